//! `--nats` and `--nats-out` in a build without the `fleet` feature (the fuzz targets'): the
//! options are parsed and checked as usual, and starting them is a start-up error naming the
//! feature. Neither type can be made, so the reactor's and the output's calls are unreachable.

use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use super::{InputPlan, InputStats, OutputPlan, OutputStats};
use crate::dispatch::LogSink;
use crate::pipeline::Pipeline;
use crate::source::Step;

fn unbuilt(shown: &str) -> String {
    format!("{shown}: this logalarm was built without the `fleet` feature (cargo build --features fleet)")
}

/// `--nats` (never made in this build).
#[derive(Debug)]
pub(crate) struct NatsIn {
    never: std::convert::Infallible,
    pub(crate) stats: Arc<InputStats>,
    pub(crate) shown: String,
}

impl NatsIn {
    pub(crate) fn start(plan: &InputPlan, _waker: mio::Waker) -> Result<NatsIn, String> {
        Err(unbuilt(&plan.shown))
    }

    pub(crate) fn serve(&mut self, _: &mut Pipeline, _: &mut LogSink<'_>) -> io::Result<Step> {
        match self.never {}
    }

    pub(crate) fn finish(
        &mut self,
        _: &mut Pipeline,
        _: &mut LogSink<'_>,
        _: Duration,
    ) -> io::Result<()> {
        match self.never {}
    }
}

/// `--nats-out` (never made in this build).
#[derive(Debug)]
pub(crate) struct Publisher {
    never: std::convert::Infallible,
    pub(crate) stats: Arc<OutputStats>,
}

impl Publisher {
    pub(crate) fn start(plan: &OutputPlan) -> Result<Publisher, String> {
        Err(unbuilt(&plan.shown))
    }

    pub(crate) fn send(&self, _: &[u8]) {
        match self.never {}
    }

    pub(crate) fn close(&self, _: Duration, _: &AtomicBool) {
        match self.never {}
    }
}
