//! Monitors other than log lines: they raise alarms when something happens outside the log.
//!
//! Role: one room per monitor — [`fd`] (`alarm-fd`: a descriptor becomes readable), [`backlog`]
//! (`alarm-backlog`: a listen queue is full), [`socket`] (`--alarm-socket`: another program
//! raises an alarm by name). `alarm-segfault` lives with the supervised processes
//! (`supervise`). [`Monitors::open`] opens what the plan's monitor specs name, at start-up, so
//! that a descriptor that is not open or an address that cannot be bound is a start-up error.
//! Invariants: the monitors do no polling of their own — the reactor calls them when a
//! descriptor is readable or a timer is due; nothing here blocks; every failure after start-up
//! is one `[uwsgi-alarm…]` line and never stops logalarm.

use std::os::fd::RawFd;

use crate::config::Origin;
use crate::plan::MonitorPlan;
use crate::source::tail::{Tail, TailState};

pub(crate) mod backlog;
pub(crate) mod fd;
pub(crate) mod socket;

use backlog::Backlog;
use fd::FdWatch;
use socket::AlarmSocket;

/// A monitor or input that could not be opened at start-up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MonitorError {
    #[error("invalid alarm-fd: {name} {fd}: descriptor {fd} is not open (it must be inherited, e.g. `logalarm ... {fd}<file`)")]
    FdNotOpen { name: String, fd: RawFd },
    #[error("invalid {option}: {value}: cannot bind{at}: {source}{origin}")]
    Bind {
        option: &'static str,
        value: String,
        /// ` ADDRESS` when it differs from the value, or empty.
        at: String,
        source: std::io::Error,
        origin: Origin,
    },
}

/// The monitors and inputs beyond standard input and supervised processes, opened.
#[derive(Debug, Default)]
pub(crate) struct Monitors {
    pub(crate) fds: Vec<FdWatch>,
    pub(crate) backlogs: Vec<Backlog>,
    pub(crate) tails: Vec<Tail>,
    /// `--tail-state`, read (with tails to follow).
    pub(crate) tail_state: Option<TailState>,
    /// Bound `--udp` sockets.
    pub(crate) udp: Vec<std::net::UdpSocket>,
    /// `--udp-allow` and `--udp-sender`.
    pub(crate) udp_options: crate::source::udp::Options,
    pub(crate) sockets: Vec<AlarmSocket>,
    /// `--nats` inputs, started by the reactor (each needs its waker).
    pub(crate) nats: Vec<crate::nats::InputPlan>,
}

impl Monitors {
    /// Check and open what the plan's monitors need: descriptors, sockets, files.
    pub(crate) fn open(
        spec: &MonitorPlan,
        rank: impl Fn(&str) -> u32,
    ) -> Result<Monitors, MonitorError> {
        let fds = FdWatch::group(&spec.alarm_fds, rank)?;
        let backlogs = spec
            .watch
            .iter()
            .map(|(shown, what)| Backlog::new(shown, what.clone()))
            .collect();
        let tail_state = match &spec.tail_state {
            Some(f) if !spec.tails.is_empty() => Some(TailState::load(f)),
            _ => None,
        };
        let tails = spec
            .tails
            .iter()
            .map(|t| {
                let saved = tail_state.as_ref().and_then(|st| st.saved(t));
                Tail::open(t, spec.tail_from_start, saved)
            })
            .collect();
        let mut udp = Vec::new();
        for (value, addr, origin) in &spec.udp {
            let sock = std::net::UdpSocket::bind(addr).map_err(|source| MonitorError::Bind {
                option: "udp",
                value: value.clone(),
                at: format!(" {addr}"),
                source,
                origin: origin.clone(),
            })?;
            udp.push(sock);
        }
        let mut sockets = Vec::new();
        for (path, origin) in &spec.alarm_sockets {
            let sock = AlarmSocket::bind(path).map_err(|source| MonitorError::Bind {
                option: "alarm-socket",
                value: path.display().to_string(),
                at: String::new(),
                source,
                origin: origin.clone(),
            })?;
            sockets.push(sock);
        }
        Ok(Monitors {
            fds,
            backlogs,
            tails,
            tail_state,
            udp,
            udp_options: crate::source::udp::Options {
                allow: spec.udp_allow.clone(),
                sender: spec.udp_sender,
            },
            sockets,
            nats: spec.nats.clone(),
        })
    }

    /// Whether something keeps logalarm running after standard input ends (`alarm-fd`
    /// watches count while they are open, which the reactor tracks).
    pub(crate) fn endless(&self) -> bool {
        !self.backlogs.is_empty()
            || !self.tails.is_empty()
            || !self.udp.is_empty()
            || !self.sockets.is_empty()
            || !self.nats.is_empty()
    }
}
