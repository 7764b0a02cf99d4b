//! logalarm: a standalone, high-throughput re-implementation of the uWSGI alarm subsystem.
//!
//! The log path: [`reactor`] reads input into a [`linebuf::LineBuffer`], [`pipeline`] passes
//! every byte to the [`output`] and asks [`rules`] (one multi-pattern automaton) which lines
//! raise which alarms; [`dispatch`] queues them to the threads that run the [`action`]s.
//! [`config`] reads uWSGI options, [`plan`] checks and compiles them, [`app`] ties it together.

pub mod action;
pub mod app;
pub mod config;
pub mod dispatch;
pub mod linebuf;
pub mod litscan;
pub mod monitor;
pub mod output;
pub mod pipeline;
pub mod plan;
pub mod reactor;
pub mod rules;
pub mod supervise;
pub mod sys;
