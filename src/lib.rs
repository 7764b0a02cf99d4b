//! logalarm: a standalone, high-throughput re-implementation of the uWSGI alarm subsystem.
pub mod config;
pub mod rules;
pub mod sys;
