//! The JetStream side of `--nats` and `--nats-out` (async-nats on a tokio runtime confined to
//! each NATS thread; built with the `fleet` feature).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{InputPlan, InputStats, OutputPlan, OutputStats};
use crate::dispatch::{LogSink, Mark};
use crate::pipeline::Pipeline;
use crate::report::report;
use crate::source::Step;

/// Chunks handed over and not yet processed: back-pressure on the fetching.
const CHUNKS: usize = 4;

/// A chunk is handed over when it holds this many bytes or messages, or when no message
/// waits.
const CHUNK_BYTES: usize = 1 << 20;
const CHUNK_MESSAGES: usize = 4096;

/// A single-threaded tokio runtime for one NATS thread.
fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

async fn connect(url: &str, shown: &str) -> Result<async_nats::Client, String> {
    async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .name("logalarm")
        .connect(url)
        .await
        .map_err(|e| {
            format!(
                "{shown}: cannot connect: {}",
                crate::config::redact_value(&e.to_string())
            )
        })
}

/// A chunk of whole lines and the messages it came from.
struct Chunk {
    buf: Vec<u8>,
    ackers: Vec<async_nats::jetstream::message::Acker>,
}

/// A processed chunk: its messages are acknowledged once `mark` is reached.
struct Handled {
    ackers: Vec<async_nats::jetstream::message::Acker>,
    mark: Mark,
    /// When the server last heard of these messages (handed back, or told "in progress").
    told: std::time::Instant,
}

/// `--nats`: a JetStream consumer read by a thread of its own (see the module doc).
pub(crate) struct NatsIn {
    full: tokio::sync::mpsc::Receiver<Result<Chunk, String>>,
    handled: tokio::sync::mpsc::UnboundedSender<Handled>,
    stop: Arc<AtomicBool>,
    done: std::sync::mpsc::Receiver<()>,
    _waker: Arc<mio::Waker>,
    pub(crate) stats: Arc<InputStats>,
    pub(crate) shown: String,
}

impl std::fmt::Debug for NatsIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NatsIn({})", self.shown)
    }
}

impl NatsIn {
    /// Connect, find the stream, create the durable consumer when missing, and start the
    /// thread; it wakes the poll through `waker` after each chunk. Fails when the server or
    /// the stream cannot be reached within a few seconds (a start-up error).
    pub(crate) fn start(plan: &InputPlan, waker: mio::Waker) -> Result<NatsIn, String> {
        let waker = Arc::new(waker);
        let rt = runtime().map_err(|e| format!("{}: {e}", plan.shown))?;
        let consumer = rt.block_on(consumer(plan))?;
        let (full_tx, full) = tokio::sync::mpsc::channel(CHUNKS);
        let (handled, handled_rx) = tokio::sync::mpsc::unbounded_channel();
        let (done_tx, done) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(InputStats::default());
        let (w, st, sp, p) = (waker.clone(), stats.clone(), stop.clone(), plan.clone());
        std::thread::Builder::new()
            .name("logalarm-nats".into())
            .spawn(move || {
                rt.block_on(pull(consumer, p, full_tx, handled_rx, w, st, sp));
                let _ = done_tx.send(());
            })
            .map_err(|e| format!("{}: {e}", plan.shown))?;
        Ok(NatsIn {
            full,
            handled,
            stop,
            done,
            _waker: waker,
            stats,
            shown: plan.shown.clone(),
        })
    }

    /// Process the next chunk the thread fetched. `Idle` when none waits.
    pub(crate) fn serve(
        &mut self,
        pipeline: &mut Pipeline,
        sink: &mut LogSink<'_>,
    ) -> io::Result<Step> {
        use tokio::sync::mpsc::error::TryRecvError;
        match self.full.try_recv() {
            Ok(Ok(chunk)) => self.process(chunk, pipeline, sink).map(|()| Step::More),
            Ok(Err(e)) => {
                report!(Alarm, "{e}");
                Ok(Step::End)
            }
            Err(TryRecvError::Empty) => Ok(Step::Idle),
            Err(TryRecvError::Disconnected) => Ok(Step::End),
        }
    }

    fn process(
        &mut self,
        chunk: Chunk,
        pipeline: &mut Pipeline,
        sink: &mut LogSink<'_>,
    ) -> io::Result<()> {
        let res = pipeline.feed_chunk(&chunk.buf, sink);
        sink.flush();
        if res.is_ok() {
            let mark = sink.dispatcher.mark();
            let _ = self.handled.send(Handled {
                ackers: chunk.ackers,
                mark,
                told: std::time::Instant::now(),
            });
        }
        res
    }

    /// Stop fetching, process the chunks already fetched, and let the thread acknowledge
    /// them (their alarms handled) and refuse the rest; waits at most `grace`.
    pub(crate) fn finish(
        &mut self,
        pipeline: &mut Pipeline,
        sink: &mut LogSink<'_>,
        grace: Duration,
    ) -> io::Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        let deadline = std::time::Instant::now() + grace.max(Duration::from_secs(1));
        loop {
            match self.full.try_recv() {
                Ok(Ok(chunk)) => self.process(chunk, pipeline, sink)?,
                Ok(Err(_)) | Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => break,
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                    if std::time::Instant::now() >= deadline {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        // Closing the channel tells the thread that nothing more comes back.
        let (closed, _) = tokio::sync::mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.handled, closed));
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if self
            .done
            .recv_timeout(left.max(Duration::from_secs(1)))
            .is_err()
        {
            report!(
                Alarm,
                "{}: acknowledgements still pending at exit: those messages will be delivered again",
                self.shown
            );
        }
        let st = &self.stats;
        report!(
            Alarm,
            "exit: nats {}: {} message(s) read, {} of them delivered again (redelivered), {} acknowledged",
            self.shown,
            st.messages.load(Ordering::Relaxed),
            st.redelivered.load(Ordering::Relaxed),
            st.acked.load(Ordering::Relaxed)
        );
        Ok(())
    }
}

async fn consumer(
    plan: &InputPlan,
) -> Result<
    (
        async_nats::Client,
        async_nats::jetstream::consumer::PullConsumer,
    ),
    String,
> {
    use async_nats::jetstream::consumer::{pull, AckPolicy};
    let client = connect(&plan.url, &plan.shown).await?;
    let js = async_nats::jetstream::new(client.clone());
    let stream = js
        .get_stream(&plan.stream)
        .await
        .map_err(|e| format!("{}: stream `{}`: {e}", plan.shown, plan.stream))?;
    stream
        .get_or_create_consumer(
            &plan.consumer,
            pull::Config {
                durable_name: Some(plan.consumer.clone()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: plan.ack_wait,
                max_ack_pending: plan.max_pending as i64,
                ..Default::default()
            },
        )
        .await
        .map(|c| (client, c))
        .map_err(|e| format!("{}: consumer `{}`: {e}", plan.shown, plan.consumer))
}

/// The thread's loop: fetch, hand over chunks, acknowledge what is handled.
async fn pull(
    (client, consumer): (
        async_nats::Client,
        async_nats::jetstream::consumer::PullConsumer,
    ),
    plan: InputPlan,
    full: tokio::sync::mpsc::Sender<Result<Chunk, String>>,
    mut handled: tokio::sync::mpsc::UnboundedReceiver<Handled>,
    waker: Arc<mio::Waker>,
    stats: Arc<InputStats>,
    stop: Arc<AtomicBool>,
) {
    use futures_util::StreamExt;
    let mut messages = match consumer
        .stream()
        .max_messages_per_batch(plan.batch)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(10))
        .messages()
        .await
    {
        Ok(m) => m,
        Err(e) => {
            let _ = full.send(Err(format!("{}: {e}", plan.shown))).await;
            let _ = waker.wake();
            return;
        }
    };
    let mut waiting: std::collections::VecDeque<Handled> = std::collections::VecDeque::new();
    let mut chunk = Chunk {
        buf: Vec::new(),
        ackers: Vec::new(),
    };
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut closed = false;
    loop {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        // Hand over what was gathered when nothing more is ready.
        let next = if chunk.ackers.is_empty() {
            tokio::select! {
                m = messages.next() => Some(m),
                h = handled.recv(), if !closed => { match h { Some(h) => waiting.push_back(h), None => closed = true } None }
                _ = tick.tick() => None,
            }
        } else {
            tokio::time::timeout(Duration::ZERO, messages.next())
                .await
                .ok()
        };
        let got = next.is_some();
        match next {
            Some(Some(Ok(msg))) => {
                stats.messages.fetch_add(1, Ordering::Relaxed);
                if msg.info().is_ok_and(|i| i.delivered > 1) {
                    stats.redelivered.fetch_add(1, Ordering::Relaxed);
                }
                let (m, acker) = msg.split();
                chunk.buf.extend_from_slice(&m.payload);
                if !chunk.buf.ends_with(b"\n") {
                    chunk.buf.push(b'\n');
                }
                chunk.ackers.push(acker);
            }
            Some(Some(Err(e))) => {
                // Heartbeats missed, a server restarting: async-nats goes on pulling.
                report!(Alarm, "{}: {e}", plan.shown);
            }
            Some(None) => {
                let _ = full
                    .send(Err(format!("{}: the consumer ended", plan.shown)))
                    .await;
                let _ = waker.wake();
                break;
            }
            None => {}
        }
        let ready = !chunk.ackers.is_empty()
            && (!got || chunk.buf.len() >= CHUNK_BYTES || chunk.ackers.len() >= CHUNK_MESSAGES);
        if ready {
            let c = std::mem::replace(
                &mut chunk,
                Chunk {
                    buf: Vec::new(),
                    ackers: Vec::new(),
                },
            );
            // Back-pressure: waits while the reactor has CHUNKS unprocessed; acknowledges
            // meanwhile.
            let mut c = Some(c);
            while let Some(one) = c.take() {
                match full.try_send(Ok(one)) {
                    Ok(()) => {}
                    Err(tokio::sync::mpsc::error::TrySendError::Full(Ok(back))) => {
                        c = Some(back);
                        ack_reached(&mut waiting, &stats, plan.ack_wait).await;
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        tokio::select! {
                            h = handled.recv(), if !closed => match h { Some(h) => waiting.push_back(h), None => closed = true },
                            _ = tokio::time::sleep(Duration::from_millis(2)) => {}
                        }
                    }
                    Err(_) => return,
                }
            }
            if let Some(unsent) = c {
                nak(unsent.ackers).await;
            }
            let _ = waker.wake();
        }
        while let Ok(h) = handled.try_recv() {
            waiting.push_back(h);
        }
        ack_reached(&mut waiting, &stats, plan.ack_wait).await;
    }
    // Stopping: nothing more is handed over (the reactor sees the channel end), and the
    // messages fetched but never handed over go to another instance now.
    drop(full);
    let _ = waker.wake();
    nak(std::mem::take(&mut chunk.ackers)).await;
    drop(messages);
    // What the reactor hands back until it closes the channel, acknowledged once handled.
    loop {
        while let Ok(h) = handled.try_recv() {
            waiting.push_back(h);
        }
        ack_reached(&mut waiting, &stats, plan.ack_wait).await;
        if closed && waiting.is_empty() {
            break;
        }
        if closed && waiting.iter().all(|h| !h.mark.reached()) {
            // The grace period ended with alarms unhandled: not acknowledged.
            tokio::time::sleep(Duration::from_millis(20)).await;
            if waiting.iter().all(|h| !h.mark.reached()) {
                break;
            }
        }
        tokio::select! {
            h = handled.recv(), if !closed => match h { Some(h) => waiting.push_back(h), None => closed = true },
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    }
    // The acknowledgements are publishes: sent before the thread ends.
    let _ = client.flush().await;
}

/// Acknowledge, oldest first, every handed-back chunk whose mark is reached; tell the server
/// the others are in progress every third of `ack_wait` (alarms slower than `ack_wait` must
/// not make it deliver the lines again elsewhere).
async fn ack_reached(
    waiting: &mut std::collections::VecDeque<Handled>,
    stats: &InputStats,
    ack_wait: Duration,
) {
    while waiting.front().is_some_and(|h| h.mark.reached()) {
        let Some(h) = waiting.pop_front() else { break };
        for a in h.ackers {
            if a.ack().await.is_ok() {
                stats.acked.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    for h in waiting.iter_mut() {
        if h.told.elapsed() >= ack_wait / 3 {
            h.told = std::time::Instant::now();
            for a in &h.ackers {
                let _ = a.ack_with(async_nats::jetstream::AckKind::Progress).await;
            }
        }
    }
}

async fn nak(ackers: Vec<async_nats::jetstream::message::Acker>) {
    for a in ackers {
        let _ = a.ack_with(async_nats::jetstream::AckKind::Nak(None)).await;
    }
}

/// `--nats-out`: the log output's tee (see the module doc).
pub(crate) struct Publisher {
    /// `None` once closed. Locked by writers that already hold the output's lock: never
    /// contended.
    tx: std::sync::Mutex<Option<tokio::sync::mpsc::Sender<bytes::Bytes>>>,
    block: bool,
    pub(crate) stats: Arc<OutputStats>,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Publisher")
    }
}

/// Written chunks waiting for the publisher (each at most the output's largest write, 1 MiB
/// from standard input: 64 MiB at most).
const OUT_CHUNKS: usize = 64;

impl Publisher {
    /// Connect (and with `stream=`, create the stream when missing) and start the thread.
    pub(crate) fn start(plan: &OutputPlan) -> Result<Publisher, String> {
        let rt = runtime().map_err(|e| format!("{}: {e}", plan.shown))?;
        let target = rt.block_on(async {
            let client = connect(&plan.url, &plan.shown).await?;
            let js = match &plan.stream {
                Some(name) => {
                    let js = async_nats::jetstream::new(client.clone());
                    js.get_or_create_stream(async_nats::jetstream::stream::Config {
                        name: name.clone(),
                        subjects: vec![plan.subject.clone()],
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| format!("{}: stream `{name}`: {e}", plan.shown))?;
                    Some(js)
                }
                None => None,
            };
            Ok::<_, String>((client, js))
        })?;
        let (tx, rx) = tokio::sync::mpsc::channel(OUT_CHUNKS);
        let stats = Arc::new(OutputStats::default());
        let (st, p) = (stats.clone(), plan.clone());
        let thread = std::thread::Builder::new()
            .name("logalarm-nats-out".into())
            .spawn(move || rt.block_on(publish(target, p, rx, st)))
            .map_err(|e| format!("{}: {e}", plan.shown))?;
        Ok(Publisher {
            tx: std::sync::Mutex::new(Some(tx)),
            block: plan.block,
            stats,
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    /// Take a copy of bytes written to the log output.
    pub(crate) fn send(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let b = bytes::Bytes::copy_from_slice(bytes);
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        let sent = match tx.as_ref() {
            Some(tx) if self.block => tx.blocking_send(b).is_ok(),
            Some(tx) => tx.try_send(b).is_ok(),
            None => false,
        };
        if !sent {
            let lines = memchr::memchr_iter(b'\n', bytes).count().max(1);
            self.stats
                .dropped
                .fetch_add(lines as u64, Ordering::Relaxed);
        }
    }

    /// Publish what is left and wait for the server's acknowledgements: for as long as it
    /// takes at the end of the input, at most `grace` once `stop` (SIGTERM/SIGINT) is set.
    pub(crate) fn close(&self, grace: Duration, stop: &AtomicBool) {
        // The sender held here is the only one: dropping it closes the channel once the
        // thread took what is queued.
        drop(self.tx.lock().unwrap_or_else(|p| p.into_inner()).take());
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(h) = handle else { return };
        let mut stop_seen: Option<std::time::Instant> = None;
        let mut said = std::time::Instant::now();
        while !h.is_finished() {
            if stop.load(Ordering::Relaxed) {
                let since = *stop_seen.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= grace {
                    report!(
                        Alarm,
                        "nats-out: {} line(s) published; the rest is not: logalarm is stopping",
                        self.stats.published.load(Ordering::Relaxed)
                    );
                    return;
                }
            }
            if said.elapsed() >= Duration::from_secs(10) {
                said = std::time::Instant::now();
                report!(
                    Alarm,
                    "nats-out: still publishing ({} line(s) so far)",
                    self.stats.published.load(Ordering::Relaxed)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = h.join();
    }
}

/// The publisher's loop: split into lines, publish each, in order.
async fn publish(
    (client, js): (async_nats::Client, Option<async_nats::jetstream::Context>),
    plan: OutputPlan,
    mut rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    stats: Arc<OutputStats>,
) {
    let subject = plan.subject.clone();
    let mut carry: Vec<u8> = Vec::new();
    let mut acks = std::collections::VecDeque::new();
    while let Some(b) = rx.recv().await {
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', &b) {
            let line = if carry.is_empty() {
                b.slice(start..end)
            } else {
                carry.extend_from_slice(&b[start..end]);
                bytes::Bytes::from(std::mem::take(&mut carry))
            };
            start = end + 1;
            send_line(&client, js.as_ref(), &subject, line, &mut acks, &stats).await;
        }
        carry.extend_from_slice(&b[start..]);
    }
    if !carry.is_empty() {
        let line = bytes::Bytes::from(carry);
        send_line(&client, js.as_ref(), &subject, line, &mut acks, &stats).await;
    }
    while let Some((line, fut)) = acks.pop_front() {
        settle(js.as_ref(), &subject, line, fut, &stats).await;
    }
    let _ = client.flush().await;
}

type AckFut = async_nats::jetstream::context::PublishAckFuture;

/// Publishes awaiting the server's acknowledgement at most.
const IN_FLIGHT: usize = 2048;

async fn send_line(
    client: &async_nats::Client,
    js: Option<&async_nats::jetstream::Context>,
    subject: &str,
    line: bytes::Bytes,
    acks: &mut std::collections::VecDeque<(bytes::Bytes, AckFut)>,
    stats: &OutputStats,
) {
    match js {
        None => {
            if client.publish(subject.to_string(), line).await.is_ok() {
                stats.published.fetch_add(1, Ordering::Relaxed);
            } else {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Some(js) => {
            while acks.len() >= IN_FLIGHT {
                if let Some((l, f)) = acks.pop_front() {
                    settle(Some(js), subject, l, f, stats).await;
                }
            }
            let fut = publish_retrying(js, subject, line.clone(), stats).await;
            acks.push_back((line, fut));
        }
    }
}

/// Publish through JetStream, retrying (the server restarting, a timeout) until it is taken.
async fn publish_retrying(
    js: &async_nats::jetstream::Context,
    subject: &str,
    line: bytes::Bytes,
    stats: &OutputStats,
) -> AckFut {
    let mut wait = Duration::from_millis(50);
    loop {
        match js.publish(subject.to_string(), line.clone()).await {
            Ok(f) => return f,
            Err(_) => {
                stats.retried.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Wait for one publish's acknowledgement; publish it again until one comes.
async fn settle(
    js: Option<&async_nats::jetstream::Context>,
    subject: &str,
    line: bytes::Bytes,
    fut: AckFut,
    stats: &OutputStats,
) {
    let Some(js) = js else { return };
    let mut fut = fut;
    loop {
        match fut.await {
            Ok(_) => {
                stats.published.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(_) => {
                stats.retried.fetch_add(1, Ordering::Relaxed);
                fut = publish_retrying(js, subject, line.clone(), stats).await;
            }
        }
    }
}
