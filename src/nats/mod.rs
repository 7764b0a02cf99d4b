//! NATS JetStream: one stream read by many logalarms (`--nats`), and the log stream published
//! as it is passed on (`--nats-out`).
//!
//! Role: [`NatsIn`] is a log input like standard input's reader: a thread of its own (a tokio
//! runtime confined to it: async-nats is async, the reactor stays mio) pulls messages from a
//! durable pull consumer — every logalarm naming the same consumer shares the stream's load —
//! and hands them over in chunks of whole lines; the reactor processes a chunk in place and
//! hands back, with the chunk, a [`Mark`] of the lanes' progress. The thread acknowledges the
//! chunk's messages once the mark is reached: the lines were passed on and every alarm they
//! raised was handled (run, held, dropped and counted, or spooled). [`Publisher`] is the
//! output's tee: every byte written to the log output is sent, a line per message, to a
//! subject (through JetStream with `stream=`, each publish acknowledged by the server).
//! Invariants: delivery is at least once: a message is acknowledged only after its lines
//! were passed on and their alarms handled; an instance killed before that has its messages
//! delivered again to the others after `ack_wait`; on SIGTERM the messages fetched but not
//! handed over are refused (`NAK`), so they go to another instance at once. A redelivered
//! message is counted; its alarms are decided by anti-flood like any other (with
//! `alarm-cluster`, by the fleet's, which remembers the first delivery's firing). The output
//! never reorders: lines are published in the order written; with `when_full=block` (the
//! default) a stuck server slows the log path instead of losing lines, with `drop` they are
//! counted.
//! Rejected alternatives: a push consumer with a deliver group (the pull consumer is what
//! JetStream recommends for sharing work, and fetches only what an instance can take);
//! acknowledging when the alarms are queued (an instance killed with a full queue would lose
//! them: the at-least-once includes the alarms).

// Without the `fleet` feature the client is not built: what only it reads is unused.
#![cfg_attr(not(feature = "fleet"), allow(dead_code))]

use std::sync::atomic::AtomicU64;
use std::time::Duration;

#[cfg(feature = "fleet")]
mod jetstream;
#[cfg(feature = "fleet")]
pub(crate) use jetstream::{NatsIn, Publisher};
#[cfg(not(feature = "fleet"))]
mod off;
#[cfg(not(feature = "fleet"))]
pub(crate) use off::{NatsIn, Publisher};

/// `--nats URL,STREAM,CONSUMER[,ack_wait=S][,batch=N]`.
#[derive(Clone)]
pub(crate) struct InputPlan {
    pub(crate) shown: String,
    url: String,
    stream: String,
    consumer: String,
    ack_wait: Duration,
    batch: usize,
    /// The consumer's `max_ack_pending` (set by the instance that creates it): messages
    /// unacknowledged at once across every instance.
    max_pending: usize,
}

impl std::fmt::Debug for InputPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// `--nats-out URL,SUBJECT[,stream=NAME][,when_full=block|drop]`.
#[derive(Clone)]
pub(crate) struct OutputPlan {
    pub(crate) shown: String,
    url: String,
    subject: String,
    stream: Option<String>,
    block: bool,
}

impl std::fmt::Debug for OutputPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

fn check_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("nats://") || url.starts_with("tls://")) {
        return Err(format!(
            "`{}`: expected nats://HOST:PORT or tls://HOST:PORT",
            crate::config::redact_value(url)
        ));
    }
    Ok(())
}

fn check_name(what: &str, v: &str) -> Result<(), String> {
    if v.is_empty() || v.len() > 255 || v.contains(['.', '*', '>', ' ', '/', '\\']) {
        return Err(format!(
            "{what} `{v}`: a name of 1 to 255 characters without `.`, `*`, `>`, `/` or spaces"
        ));
    }
    Ok(())
}

impl InputPlan {
    pub(crate) fn parse(v: &str) -> Result<InputPlan, String> {
        let mut parts = v.split(',');
        let (Some(url), Some(stream), Some(consumer)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err("expected URL,STREAM,CONSUMER".into());
        };
        check_url(url)?;
        check_name("stream", stream)?;
        check_name("consumer", consumer)?;
        let mut plan = InputPlan {
            shown: crate::config::redact_value(v),
            url: url.to_string(),
            stream: stream.to_string(),
            consumer: consumer.to_string(),
            ack_wait: Duration::from_secs(30),
            batch: 512,
            max_pending: 20_000,
        };
        for kv in parts {
            let (k, val) = kv.split_once('=').unwrap_or((kv, ""));
            let n = val.parse::<u64>();
            match (k, n) {
                ("ack_wait", Ok(s)) if (1..=3600).contains(&s) => {
                    plan.ack_wait = Duration::from_secs(s)
                }
                ("batch", Ok(b)) if (1..=10_000).contains(&b) => plan.batch = b as usize,
                ("max_pending", Ok(m)) if (1..=10_000_000).contains(&m) => {
                    plan.max_pending = m as usize
                }
                ("max_pending", _) => {
                    return Err(format!(
                        "max_pending=`{val}`: expected a count from 1 to 10000000"
                    ))
                }
                ("ack_wait", _) => {
                    return Err(format!("ack_wait=`{val}`: expected seconds from 1 to 3600"))
                }
                ("batch", _) => {
                    return Err(format!("batch=`{val}`: expected a count from 1 to 10000"))
                }
                _ => {
                    return Err(format!(
                        "unknown key `{k}` (known: ack_wait, batch, max_pending)"
                    ))
                }
            }
        }
        Ok(plan)
    }
}

impl OutputPlan {
    pub(crate) fn parse(v: &str) -> Result<OutputPlan, String> {
        let mut parts = v.split(',');
        let (Some(url), Some(subject)) = (parts.next(), parts.next()) else {
            return Err("expected URL,SUBJECT".into());
        };
        check_url(url)?;
        if subject.is_empty() || subject.contains([' ', '*', '>']) {
            return Err(format!(
                "subject `{subject}`: a subject without spaces or wildcards"
            ));
        }
        let mut plan = OutputPlan {
            shown: crate::config::redact_value(v),
            url: url.to_string(),
            subject: subject.to_string(),
            stream: None,
            block: true,
        };
        for kv in parts {
            match kv.split_once('=').unwrap_or((kv, "")) {
                ("stream", name) => {
                    check_name("stream", name)?;
                    plan.stream = Some(name.to_string());
                }
                ("when_full", "block") => plan.block = true,
                ("when_full", "drop") => plan.block = false,
                ("when_full", other) => {
                    return Err(format!("when_full=`{other}`: expected block or drop"))
                }
                (k, _) => return Err(format!("unknown key `{k}` (known: stream, when_full)")),
            }
        }
        Ok(plan)
    }
}

/// What the input's counters say (metrics, the summary).
#[derive(Debug, Default)]
pub(crate) struct InputStats {
    pub(crate) messages: AtomicU64,
    pub(crate) redelivered: AtomicU64,
    pub(crate) acked: AtomicU64,
}

/// What `--nats-out` counts.
#[derive(Debug, Default)]
pub(crate) struct OutputStats {
    pub(crate) published: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) retried: AtomicU64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_parsed_and_refused_with_reasons() {
        let p = InputPlan::parse("nats://u:s3cret@127.0.0.1:4222,LOGS,workers,ack_wait=5,batch=64")
            .expect("valid");
        assert_eq!(
            (p.stream.as_str(), p.consumer.as_str()),
            ("LOGS", "workers")
        );
        assert_eq!((p.ack_wait, p.batch), (Duration::from_secs(5), 64));
        assert!(!p.shown.contains("s3cret"));
        crate::plan::assert_refused(
            InputPlan::parse,
            &[
                ("nats://h:1,LOGS", "expected URL,STREAM,CONSUMER"),
                ("http://h:1,LOGS,c", "expected nats://"),
                ("nats://h:1,LO.GS,c", "stream `LO.GS`"),
                ("nats://h:1,LOGS,c,ack_wait=0", "ack_wait="),
                ("nats://h:1,LOGS,c,color=1", "unknown key `color`"),
            ],
        );
        let o = OutputPlan::parse("nats://h:1,logs.web,stream=LOGS,when_full=drop").expect("ok");
        assert_eq!(o.stream.as_deref(), Some("LOGS"));
        assert!(!o.block);
        crate::plan::assert_refused(
            OutputPlan::parse,
            &[
                ("nats://h:1", "expected URL,SUBJECT"),
                ("nats://h:1,logs.>", "wildcards"),
                ("nats://h:1,logs,when_full=later", "when_full="),
            ],
        );
    }
}
