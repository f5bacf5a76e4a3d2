//! The SIMD mask kernels of the scanner: the four byte-class masks of a 64-byte
//! block, one file per instruction set, behind the [`Kernel`] trait.
//!
//! This is the inner loop of the scan (the layout follows simd-json's stage 1, one
//! implementation per instruction set). SSE2 is part of every x86_64 CPU and NEON of
//! every aarch64 one, so those need no run-time detection and form the
//! [`Baseline`]; AVX2 and AVX-512BW are picked at run time by the scanner's
//! dispatch. A plain per-byte loop does not vectorise into compare-and-movemask
//! (the compiler widens every byte to 64 bits, several times slower), hence the
//! intrinsics; the portable SWAR kernel serves the other targets. Every kernel the
//! machine can run is tested against the obvious loop ([`classify_naive`]).

use super::BLOCK;

/// Implements [`Kernel`] for a baseline kernel: one every CPU of its target runs
/// (always available), with a safe `classify` in its module and the shift-based
/// prefix XOR. SSE2, NEON and the portable kernel are such kernels.
macro_rules! baseline_kernel {
    ($kernel:ident, $name:literal) => {
        impl super::Kernel for $kernel {
            const NAME: &'static str = $name;

            fn available() -> bool {
                true
            }

            #[inline(always)]
            unsafe fn classify(block: &[u8; super::BLOCK]) -> super::Masks {
                classify(block)
            }

            #[inline(always)]
            unsafe fn prefix_xor(x: u64) -> u64 {
                super::prefix_xor_shifts(x)
            }
        }
    };
}
use baseline_kernel;

/// Implements [`Kernel`] for an x86_64 kernel picked at run time: `$available` is
/// its feature check, the module's `classify` is compiled for those features, and
/// the prefix XOR is the carry-less multiply (PCLMULQDQ is part of every such check).
#[cfg(target_arch = "x86_64")]
macro_rules! detected_kernel {
    ($kernel:ident, $name:literal, $available:expr) => {
        impl super::Kernel for $kernel {
            const NAME: &'static str = $name;

            fn available() -> bool {
                $available
            }

            #[inline(always)]
            unsafe fn classify(block: &[u8; super::BLOCK]) -> super::Masks {
                // SAFETY: the caller checked `available` (the trait's contract), which
                // holds every feature `classify` is compiled for.
                unsafe { classify(block) }
            }

            #[inline(always)]
            unsafe fn prefix_xor(x: u64) -> u64 {
                // SAFETY: the caller checked `available`, which includes PCLMULQDQ.
                unsafe { clmul_prefix_xor(x) }
            }
        }
    };
}
#[cfg(target_arch = "x86_64")]
use detected_kernel;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;
// Compiled and tested everywhere, the baseline only on the other targets.
#[cfg_attr(any(target_arch = "x86_64", target_arch = "aarch64"), allow(dead_code))]
pub mod portable;
#[cfg(target_arch = "x86_64")]
pub mod sse2;

/// The four byte-class masks of a 64-byte block: bit i describes `block[i]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Masks {
    pub quote: u64,
    pub backslash: u64,
    /// `{` and `[` (`b | 0x20 == b'{'` holds for exactly those two bytes).
    pub open: u64,
    /// `}` and `]`.
    pub close: u64,
}

/// A way to compute the block masks.
///
/// # Safety
///
/// `classify` and `prefix_xor` may use CPU features beyond the target's baseline:
/// call them only when [`Kernel::available`] is true.
pub trait Kernel {
    /// The name the tests report.
    #[cfg_attr(not(test), allow(dead_code))]
    const NAME: &'static str;

    /// Can this CPU run the kernel? (Cached by the standard library's detection.)
    /// Only x86_64 picks kernels at run time; elsewhere only the tests ask.
    #[cfg_attr(not(any(test, target_arch = "x86_64")), allow(dead_code))]
    fn available() -> bool;

    /// # Safety
    /// The CPU has the kernel's features ([`Kernel::available`]).
    unsafe fn classify(block: &[u8; BLOCK]) -> Masks;

    /// Bit i of the result is the XOR of bits 0..=i: 1 from an opening quote up
    /// to, not including, its closing quote.
    ///
    /// # Safety
    /// The CPU has the kernel's features ([`Kernel::available`]).
    unsafe fn prefix_xor(x: u64) -> u64;
}

/// The target's baseline kernel: SSE2 on x86_64.
#[cfg(target_arch = "x86_64")]
pub type Baseline = sse2::Sse2;
/// The target's baseline kernel: NEON on aarch64.
#[cfg(target_arch = "aarch64")]
pub type Baseline = neon::Neon;
/// The target's baseline kernel: SWAR elsewhere.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub type Baseline = portable::Portable;

/// Prefix XOR with shifts, for kernels without a carry-less multiply.
#[inline(always)]
pub fn prefix_xor_shifts(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// Which kernel to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// The best the CPU supports.
    Auto,
    Baseline,
    Avx2,
    Avx512,
}

impl Choice {
    /// `TRAILWATCH_SCAN_KERNEL` (`baseline`, `avx2`, `avx512`) pins a kernel, so
    /// that a benchmark can show what the CPU-specific code buys; anything else
    /// means the best available. Read once.
    pub fn from_env() -> Choice {
        static CHOICE: std::sync::OnceLock<Choice> = std::sync::OnceLock::new();
        *CHOICE.get_or_init(
            || match std::env::var("TRAILWATCH_SCAN_KERNEL").as_deref() {
                Ok("baseline") => Choice::Baseline,
                Ok("avx2") => Choice::Avx2,
                Ok("avx512") => Choice::Avx512,
                _ => Choice::Auto,
            },
        )
    }

    /// Can this kernel run on this CPU?
    #[cfg(test)]
    pub fn available(self) -> bool {
        match self {
            Choice::Auto | Choice::Baseline => true,
            #[cfg(target_arch = "x86_64")]
            Choice::Avx2 => <avx2::Avx2 as Kernel>::available(),
            #[cfg(target_arch = "x86_64")]
            Choice::Avx512 => <avx512::Avx512 as Kernel>::available(),
            #[cfg(not(target_arch = "x86_64"))]
            Choice::Avx2 | Choice::Avx512 => false,
        }
    }
}

/// The obvious loop: the definition the kernels are tested against.
#[cfg(test)]
pub fn classify_naive(block: &[u8; BLOCK]) -> Masks {
    let mut m = Masks {
        quote: 0,
        backslash: 0,
        open: 0,
        close: 0,
    };
    for (i, &b) in block.iter().enumerate() {
        m.quote |= u64::from(b == b'"') << i;
        m.backslash |= u64::from(b == b'\\') << i;
        m.open |= u64::from(b == b'{' || b == b'[') << i;
        m.close |= u64::from(b == b'}' || b == b']') << i;
    }
    m
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use super::*;

    /// A kernel as values, so that a test can loop over all of them.
    pub(crate) struct Entry {
        pub name: &'static str,
        pub available: bool,
        pub classify: unsafe fn(&[u8; BLOCK]) -> Masks,
        pub prefix_xor: unsafe fn(u64) -> u64,
    }

    fn entry<K: Kernel>() -> Entry {
        Entry {
            name: K::NAME,
            available: K::available(),
            classify: K::classify,
            prefix_xor: K::prefix_xor,
        }
    }

    /// Every kernel compiled for this target.
    pub(crate) fn compiled() -> Vec<Entry> {
        let mut kernels = vec![entry::<portable::Portable>()];
        #[cfg(target_arch = "x86_64")]
        kernels.extend([
            entry::<sse2::Sse2>(),
            entry::<avx2::Avx2>(),
            entry::<avx512::Avx512>(),
        ]);
        #[cfg(target_arch = "aarch64")]
        kernels.push(entry::<neon::Neon>());
        kernels
    }

    /// Runs `check` on every kernel this CPU has and returns their names. The
    /// kernels it lacks are reported on stderr, past the test harness's capture,
    /// so a run on a CPU without (say) AVX-512 says so instead of passing quietly;
    /// `TRAILWATCH_REQUIRE_KERNELS` (comma-separated names) turns such a skip into
    /// a failure, for a machine known to have them.
    pub(crate) fn for_each_available(
        test: &str,
        mut check: impl FnMut(&Entry),
    ) -> Vec<&'static str> {
        let required = std::env::var("TRAILWATCH_REQUIRE_KERNELS").unwrap_or_default();
        let mut ran = Vec::new();
        for kernel in compiled() {
            if kernel.available {
                check(&kernel);
                ran.push(kernel.name);
            } else {
                assert!(
                    !required.split(',').any(|name| name.trim() == kernel.name),
                    "{test}: kernel {} is required but this CPU lacks its features",
                    kernel.name
                );
                let _ = writeln!(
                    std::io::stderr(),
                    "{test}: skipped kernel {} (this CPU lacks its features)",
                    kernel.name
                );
            }
        }
        assert!(
            ran.contains(&Baseline::NAME),
            "{test}: the baseline kernel did not run ({ran:?})"
        );
        ran
    }

    /// Blocks with every byte value at every position, and random mixes of the
    /// interesting bytes.
    pub(crate) fn blocks() -> Vec<[u8; BLOCK]> {
        let mut out = Vec::new();
        for value in 0..=255u8 {
            for at in 0..BLOCK {
                let mut block = [b'a'; BLOCK];
                block[at] = value;
                block[(at * 7 + 3) % BLOCK] = value ^ 0x20;
                out.push(block);
            }
        }
        let mut state = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            let mut block = [0u8; BLOCK];
            for b in &mut block {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let table = b"\"\\{}[]{;}[]\x00\xff x[{";
                *b = table[(state % table.len() as u64) as usize] ^ ((state >> 40) as u8 & 0x80);
            }
            out.push(block);
        }
        out
    }

    #[test]
    fn every_available_classifier_matches_the_definition() {
        let blocks = blocks();
        let ran = for_each_available("classify", |kernel| {
            for block in &blocks {
                // SAFETY: `for_each_available` only runs kernels the CPU supports.
                let masks = unsafe { (kernel.classify)(block) };
                assert_eq!(masks, classify_naive(block), "{}: {block:?}", kernel.name);
            }
        });
        assert!(ran.contains(&"portable"), "{ran:?}");
    }

    #[test]
    fn every_available_prefix_xor_matches_the_shifts() {
        let ran = for_each_available("prefix_xor", |kernel| {
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            for _ in 0..10_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                for value in [x, x & (x >> 3), 1, 1 << 63, u64::MAX, 0] {
                    // SAFETY: `for_each_available` only runs kernels the CPU supports.
                    let got = unsafe { (kernel.prefix_xor)(value) };
                    assert_eq!(got, prefix_xor_shifts(value), "{}: {value:#x}", kernel.name);
                }
            }
        });
        assert!(!ran.is_empty());
    }

    #[test]
    fn prefix_xor_is_the_string_mask() {
        // Quotes at 1 and 4: bits 1..=3 are inside the string.
        assert_eq!(prefix_xor_shifts(0b1_0010), 0b0_1110);
        assert_eq!(prefix_xor_shifts(1 << 63), 1 << 63);
    }
}
