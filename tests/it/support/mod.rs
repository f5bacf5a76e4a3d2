//! Fixtures shared by the integration tests.

pub mod corpus;
pub mod fixtures;
pub mod http;
pub mod lambda_api;
pub mod moto;
pub mod rds;
pub mod read_gate;
pub mod stack;
