//! Fixtures shared by the integration tests.

pub mod corpus;
pub mod moto;
pub mod stack;
pub mod http;
