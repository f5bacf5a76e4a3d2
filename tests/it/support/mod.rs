//! Fixtures shared by the integration tests.

pub mod corpus;
pub mod fixtures;
pub mod http;
pub mod moto;
pub mod rds;
pub mod stack;
