//! The code is where the module map says it is: no two modules of `src/` import
//! each other (nor close a longer circle), and no module imports `history` (the
//! hunt over a bucket's history) only to read one object, which is `read`'s job.
//!
//! Modules are the library's top-level modules (`crate::alert`, `crate::history`,
//! ...; a module's own submodules are one with it) and the binary's `main`, `cli`
//! and `cli::*`. An import is any path that names another module: `use crate::a::…`,
//! `crate::a::f()` in code, `super::…` climbing out of a module, and a child
//! module named by its parent (`cli::commands::scan`). Comments and strings are
//! not imports. The sources are read as tokens, not compiled: the check runs in
//! a second and needs no parser crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What reading one object means: `read::read_object` and `read::read_with`
/// (the integrity ledger's hashing reads through the latter).
const OBJECT_READERS: &[&str] = &["read_object", "read_with", "read_object_hashed"];

/// A token of Rust source, as much as paths need.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Other,
}

/// Rust source as tokens, without comments, strings and character literals.
fn tokens(src: &str) -> Vec<Tok> {
    let b: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let ident_start = |c: char| c.is_alphabetic() || c == '_';
    let ident_char = |c: char| c.is_alphanumeric() || c == '_';
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if let Some(end) = raw_string_end(&b, i) {
            i = end;
            out.push(Tok::Other);
        } else if c == '"' || (c == 'b' && next == Some('"')) {
            i += if c == 'b' { 2 } else { 1 };
            while i < b.len() && b[i] != '"' {
                i += if b[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(Tok::Other);
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{1F600}') or a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < b.len() && b[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if b.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
                while i < b.len() && ident_char(b[i]) {
                    i += 1;
                }
            }
            out.push(Tok::Other);
        } else if ident_start(c) {
            let start = i;
            while i < b.len() && ident_char(b[i]) {
                i += 1;
            }
            out.push(Tok::Ident(b[start..i].iter().collect()));
        } else if c.is_ascii_digit() {
            while i < b.len() && ident_char(b[i]) {
                i += 1;
            }
            out.push(Tok::Other);
        } else {
            i += 1;
            out.push(match c {
                ':' if next == Some(':') => {
                    i += 1;
                    Tok::PathSep
                }
                '{' => Tok::Open,
                '}' => Tok::Close,
                ',' => Tok::Comma,
                _ => Tok::Other,
            });
        }
    }
    out
}

/// The end of a raw string (`r"…"`, `r#"…"#`, `br#"…"#`) starting at `i`.
fn raw_string_end(b: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if b.get(j) == Some(&'b') {
        j += 1;
    }
    if b.get(j) != Some(&'r') || (i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')) {
        return None;
    }
    j += 1;
    let hashes = b[j..].iter().take_while(|&&c| c == '#').count();
    j += hashes;
    if b.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < b.len() {
        if b[j] == '"'
            && b[j + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == '#')
                .count()
                == hashes
        {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(b.len())
}

/// The rest of a path from `i` (just after a `::`), each full path it names
/// (a `{…}` group names several), appended to `prefix`.
fn path_rest(toks: &[Tok], mut i: usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    loop {
        match toks.get(i) {
            Some(Tok::Ident(seg)) if seg == "super" => {
                path.pop();
            }
            Some(Tok::Ident(seg)) if seg == "self" => {}
            Some(Tok::Ident(seg)) => path.push(seg.clone()),
            Some(Tok::Open) => {
                // A group: each item is a path of its own below `path`.
                let mut depth = 0;
                let mut item_start = i + 1;
                let mut j = i;
                while j < toks.len() {
                    match toks[j] {
                        Tok::Open => depth += 1,
                        Tok::Close => {
                            depth -= 1;
                            if depth == 0 {
                                path_rest(toks, item_start, path.clone(), out);
                                return;
                            }
                        }
                        Tok::Comma if depth == 1 => {
                            path_rest(toks, item_start, path.clone(), out);
                            item_start = j + 1;
                        }
                        _ => {}
                    }
                    j += 1;
                }
                return;
            }
            _ => break,
        }
        if toks.get(i + 1) == Some(&Tok::PathSep) {
            i += 2;
        } else {
            break;
        }
    }
    out.push(path);
}

/// One source file's module path and every absolute path it names.
#[derive(Debug)]
struct FileRefs {
    /// The file's module, from its crate's root (`["history", "scan"]`).
    module: Vec<String>,
    /// Absolute paths named, from the crate root; `["trailwatch", …]` from the
    /// binary names the library.
    paths: Vec<Vec<String>>,
    /// Functions defined in the file.
    functions: BTreeSet<String>,
}

/// The module of a file of `src/` (relative path), as its crate sees it.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

fn file_refs(rel: &Path, src: &str) -> FileRefs {
    let module = module_of(rel);
    let toks = tokens(src);
    // Child modules declared here (`mod x;` or `mod x {`), by the module they are in.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut children: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
    let mut paths = Vec::new();
    let mut functions = BTreeSet::new();
    for (i, tok) in toks.iter().enumerate() {
        let here: Vec<String> = module
            .iter()
            .cloned()
            .chain(inline.iter().map(|(m, _)| m.clone()))
            .collect();
        let after_sep = i > 0 && toks[i - 1] == Tok::PathSep;
        match tok {
            Tok::Open => depth += 1,
            Tok::Close => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d > depth) {
                    inline.pop();
                }
            }
            Tok::Ident(kw) if kw == "mod" => {
                if let Some(Tok::Ident(name)) = toks.get(i + 1) {
                    children
                        .entry(here.clone())
                        .or_default()
                        .insert(name.clone());
                    if toks.get(i + 2) == Some(&Tok::Open) {
                        inline.push((name.clone(), depth + 1));
                    }
                }
            }
            Tok::Ident(kw) if kw == "fn" => {
                if let Some(Tok::Ident(name)) = toks.get(i + 1) {
                    functions.insert(name.clone());
                }
            }
            Tok::Ident(start) if !after_sep && toks.get(i + 1) == Some(&Tok::PathSep) => {
                let prefix = match start.as_str() {
                    "crate" => Some(Vec::new()),
                    "super" => Some(here[..here.len().saturating_sub(1)].to_vec()),
                    "self" => Some(here.clone()),
                    "trailwatch" => Some(vec!["trailwatch".to_owned()]),
                    child if children.get(&here).is_some_and(|c| c.contains(child)) => {
                        Some(here.iter().cloned().chain([child.to_owned()]).collect())
                    }
                    _ => None,
                };
                if let Some(prefix) = prefix {
                    path_rest(&toks, i + 2, prefix, &mut paths);
                }
            }
            _ => {}
        }
    }
    FileRefs {
        module,
        paths,
        functions,
    }
}

/// Which crate a file of `src/` belongs to.
fn is_binary(rel: &Path) -> bool {
    rel == Path::new("main.rs") || rel.starts_with("cli")
}

/// The import graph between modules (see the module's header).
#[derive(Debug, Default)]
struct Graph {
    /// module -> the modules it names.
    edges: BTreeMap<String, BTreeSet<String>>,
    /// module -> the paths it names inside the library's `history`.
    history_refs: BTreeMap<String, BTreeSet<Vec<String>>>,
    /// module -> the functions its files define.
    functions: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    /// `files`: paths relative to `src/` and their text.
    fn of(files: &[(PathBuf, String)]) -> Graph {
        let lib_modules: BTreeSet<String> = files
            .iter()
            .filter(|(rel, _)| !is_binary(rel))
            .filter_map(|(rel, _)| module_of(rel).first().cloned())
            .collect();
        let cli_modules: BTreeSet<String> = files
            .iter()
            .filter(|(rel, _)| rel.starts_with("cli"))
            .filter_map(|(rel, _)| module_of(rel).get(1).cloned())
            .collect();
        let bin_node = |path: &[String]| -> Option<String> {
            match path {
                [] => Some("main".to_owned()),
                [cli, child, ..] if cli == "cli" && cli_modules.contains(child) => {
                    Some(format!("cli::{child}"))
                }
                [cli, ..] if cli == "cli" => Some("cli".to_owned()),
                _ => None,
            }
        };
        let lib_node = |path: &[String]| -> Option<String> {
            path.first().filter(|m| lib_modules.contains(*m)).cloned()
        };
        let mut graph = Graph::default();
        for (rel, src) in files {
            let refs = file_refs(rel, src);
            let binary = is_binary(rel);
            let node = if binary {
                bin_node(&refs.module)
            } else {
                lib_node(&refs.module)
            };
            let Some(node) = node else { continue };
            graph
                .functions
                .entry(node.clone())
                .or_default()
                .extend(refs.functions);
            for path in refs.paths {
                // The library's path, whichever crate names it.
                let lib_path = match (binary, path.first().map(String::as_str)) {
                    (true, Some("trailwatch")) => Some(&path[1..]),
                    (true, _) => None,
                    (false, _) => Some(&path[..]),
                };
                if let Some(lib_path) = lib_path {
                    if lib_path.first().map(String::as_str) == Some("history") && node != "history"
                    {
                        graph
                            .history_refs
                            .entry(node.clone())
                            .or_default()
                            .insert(lib_path.to_vec());
                    }
                }
                let target = if binary {
                    bin_node(&path)
                } else {
                    lib_node(&path)
                };
                if let Some(target) = target.filter(|t| *t != node) {
                    graph.edges.entry(node.clone()).or_default().insert(target);
                }
            }
        }
        graph
    }

    fn imports(&self, a: &str, b: &str) -> bool {
        self.edges.get(a).is_some_and(|e| e.contains(b))
    }

    /// The circles: strongly connected components of more than one module
    /// (Tarjan), each sorted.
    fn circles(&self) -> Vec<Vec<String>> {
        struct State<'g> {
            graph: &'g Graph,
            index: BTreeMap<&'g str, usize>,
            low: BTreeMap<&'g str, usize>,
            stack: Vec<&'g str>,
            out: Vec<Vec<String>>,
        }
        fn visit<'g>(s: &mut State<'g>, v: &'g str) {
            let n = s.index.len();
            s.index.insert(v, n);
            s.low.insert(v, n);
            s.stack.push(v);
            for w in s.graph.edges.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let low = s.low[v].min(s.low[w]);
                    s.low.insert(v, low);
                } else if s.stack.contains(&w) {
                    let low = s.low[v].min(s.index[w]);
                    s.low.insert(v, low);
                }
            }
            if s.low[v] == s.index[v] {
                let mut component = Vec::new();
                while let Some(w) = s.stack.pop() {
                    component.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    s.out.push(component);
                }
            }
        }
        let mut state = State {
            graph: self,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            out: Vec::new(),
        };
        for v in self.edges.keys() {
            if !state.index.contains_key(v.as_str()) {
                visit(&mut state, v);
            }
        }
        state.out.sort();
        state.out
    }

    /// Circles not in `allowed`, each with the imports that close it.
    fn described_circles(&self) -> Vec<String> {
        self.circles()
            .into_iter()
            .map(|circle| {
                let mut imports = Vec::new();
                for a in &circle {
                    for b in &circle {
                        if self.imports(a, b) {
                            imports.push(format!("{a} -> {b}"));
                        }
                    }
                }
                format!("{{{}}}: {}", circle.join(", "), imports.join(", "))
            })
            .collect()
    }

    /// Modules whose only use of `history` is reading an object.
    fn history_only_to_read(&self) -> Vec<String> {
        self.history_refs
            .iter()
            .filter(|(_, paths)| {
                paths.iter().all(|p| {
                    p.last()
                        .is_some_and(|item| OBJECT_READERS.contains(&item.as_str()))
                })
            })
            .map(|(module, paths)| format!("{module}: {paths:?}"))
            .collect()
    }
}

fn sources() -> Vec<(PathBuf, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                files.push((path.strip_prefix(&src).unwrap().to_path_buf(), text));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn no_two_modules_import_each_other() {
    let graph = Graph::of(&sources());
    // The map is read at all: the handler's imports are seen.
    assert!(graph.imports("handler", "read"), "{:?}", graph.edges);
    assert!(graph.imports("cli::commands", "cli::history"));
    // Pipeline counts and events reports: the counts live below both.
    assert!(graph.imports("pipeline", "counters") && graph.imports("events", "counters"));
    let circles = graph.described_circles();
    assert!(
        circles.is_empty(),
        "modules that import each other (move what they share below both):\n{}",
        circles.join("\n")
    );
}

#[test]
fn objects_are_read_by_read_not_by_history() {
    let graph = Graph::of(&sources());
    let offenders = graph.history_only_to_read();
    assert!(
        offenders.is_empty(),
        "modules that import history only to read an object (use crate::read):\n{}",
        offenders.join("\n")
    );
    let history_readers: Vec<_> = graph.functions["history"]
        .iter()
        .filter(|f| OBJECT_READERS.contains(&f.as_str()))
        .collect();
    assert!(
        history_readers.is_empty(),
        "history defines {history_readers:?}: reading one object belongs in read"
    );
    for reader in ["handler", "batchops", "history", "integrity"] {
        assert!(
            graph.imports(reader, "read"),
            "{reader} reads objects through read"
        );
    }
    for reader in ["handler", "batchops"] {
        assert!(
            !graph.imports(reader, "history"),
            "{reader} reads single objects and needs nothing of history"
        );
    }
}

/// The analysis of some sources, as if they were `src/`.
fn graph_of(files: &[(&str, &str)]) -> Graph {
    let files: Vec<(PathBuf, String)> = files
        .iter()
        .map(|(p, s)| (PathBuf::from(p), s.to_string()))
        .collect();
    Graph::of(&files)
}

#[test]
fn a_mutual_import_is_a_circle() {
    let graph = graph_of(&[
        ("a.rs", "use crate::b::Thing;"),
        ("b/mod.rs", "pub fn f() { crate::a::g(); }"),
        ("c.rs", "use crate::a::x;"),
    ]);
    assert_eq!(graph.circles(), vec![vec!["a".to_owned(), "b".to_owned()]]);
    assert_eq!(
        graph.described_circles(),
        vec!["{a, b}: a -> b, b -> a".to_owned()]
    );
    // A longer circle is one too.
    let graph = graph_of(&[
        ("a.rs", "use crate::b::X;"),
        ("b.rs", "use crate::c::X;"),
        ("c.rs", "use crate::a::X;"),
    ]);
    assert_eq!(graph.described_circles().len(), 1);
}

#[test]
fn grouped_nested_and_relative_paths_are_imports_and_text_is_not() {
    let graph = graph_of(&[
        (
            "a.rs",
            r##"
            use crate::{b::{self, x}, c::y};
            // crate::d::in_a_comment
            /* crate::d::in_a_block /* nested */ crate::d::still */
            const S: &str = "crate::d::in_a_string";
            const R: &str = r#"crate::d::"raw""#;
            fn f<'a>(c: char) -> bool { c == '{' }
            "##,
        ),
        ("b.rs", ""),
        ("c.rs", ""),
        ("d.rs", ""),
        // `super` from a test module is the file's module; from a file, its parent.
        (
            "e/inner.rs",
            "mod tests { use super::*; use super::super::sibling::X; } use super::super::f::Y;",
        ),
        ("e/sibling.rs", ""),
        ("f.rs", ""),
        // The binary: a parent naming its child, a child naming its sibling.
        ("main.rs", "mod cli; fn main() { cli::commands::run(); }"),
        ("cli/mod.rs", "pub mod commands; pub mod stderr; pub struct Args;"),
        (
            "cli/commands.rs",
            "use super::stderr::usage; use super::Args; use trailwatch::history::scan::read_object;",
        ),
        ("cli/stderr.rs", ""),
    ]);
    let edges = |m: &str| graph.edges.get(m).cloned().unwrap_or_default();
    assert_eq!(edges("a"), ["b", "c"].map(String::from).into());
    assert_eq!(edges("e"), ["f"].map(String::from).into());
    assert_eq!(edges("main"), ["cli::commands"].map(String::from).into());
    assert_eq!(
        edges("cli::commands"),
        ["cli", "cli::stderr"].map(String::from).into()
    );
    assert_eq!(
        graph.history_only_to_read(),
        vec![r#"cli::commands: {["history", "scan", "read_object"]}"#.to_owned()]
    );
}
