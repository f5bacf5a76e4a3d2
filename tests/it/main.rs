//! trailwatch's integration tests, in one test binary: the library through its
//! public API, the `trailwatch` binary as a user runs it, and the Lambda handler
//! against in-memory fakes and a local AWS emulator (`moto_server`).
//!
//! Shared fixtures (gzip, log files, trigger events, the seeded corpus generator,
//! the emulator harness) live in `support`; each other module is one area of tests.

mod support;

mod aws_errors;
mod bad_input;
mod cli;
mod differential;
mod docs;
mod docs_lists;
mod emulator;
mod enrich;
mod enrich_respond;
mod generator;
mod handler;
mod help;
mod history;
mod history_cli;
mod hostile_input;
mod integrity;
mod module_map;
mod moto_harness;
mod oracle;
mod realtime;
mod respond;
mod robustness;
mod rules_output;
mod sqs_batch;
mod template;
mod triggers;
