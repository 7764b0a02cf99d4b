//! `webhook:URL[;key=val...]` and `alertmanager:URL[;key=val...]`: a JSON POST per alarm.
//!
//! `webhook:` posts one JSON document in the `shape` asked for: `json` (the default:
//! `{"alarm", "message", "host", "time"}`), `slack` and `mattermost` (`{"text"}`: incoming
//! webhooks), `pagerduty` (an Events API v2 `trigger`, `routing_key=` a secret). `header=Name:
//! value` adds a header (repeatable; its value is treated as a secret: it often carries a token).
//! `alertmanager:` posts to Alertmanager's `/api/v2/alerts`: one alert labelled `alertname` =
//! the alarm's name plus the `label.NAME=VALUE` keys, the message as its `summary` annotation,
//! `startsAt` now and `endsAt` now + `resolve=` seconds (default 300: an alarm that stops
//! firing resolves then, Alertmanager's own resolve timeout). The JSON is written by
//! serde_json: the message is escaped where it lands. Delivery (retries, timeouts, TLS
//! verification, spool, secrets kept out of reports) is [`super::delivery`]'s, as for `curl:`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::delivery::{self, Endpoint, Secret};
use super::ActionError;
use super::Ctx;

/// The JSON a `webhook:` posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Json,
    Slack,
    PagerDuty,
    Alertmanager,
}

/// A `webhook:` or `alertmanager:` action.
#[derive(Debug)]
pub(crate) struct Webhook {
    pub(crate) end: Endpoint,
    /// `webhook` or `alertmanager`.
    pub(crate) kind: &'static str,
    shape: Shape,
    headers: Vec<Secret>,
    routing_key: Secret,
    severity: String,
    /// `label.NAME=TEMPLATE`: static text, or the raising rule's captures (`{ip}`), rendered
    /// per alarm by the alarm's decision (`suppress`) and handed over by [`Webhook::prepare`].
    labels: Vec<(String, crate::suppress::Template)>,
    /// The labels' values for the next delivery, and whether it resolves the alert (an
    /// absence's recovery).
    current: Option<Vec<Vec<u8>>>,
    resolved: bool,
    resolve: Duration,
    generator: Option<String>,
}

impl Webhook {
    /// Parse the argument of `kind` (`webhook` or `alertmanager`); unknown keys are pushed to
    /// `warnings`.
    pub(crate) fn parse(
        kind: &'static str,
        arg: &str,
        warnings: &mut Vec<String>,
    ) -> Result<Webhook, ActionError> {
        let (url, pairs) = delivery::split_args(arg);
        let Some(scheme) = delivery::scheme(&url).filter(|s| s == "http" || s == "https") else {
            return Err(ActionError::from(format!(
                "`{}` is not an http:// or https:// URL: expected {kind}:URL[;key=val...]",
                crate::config::redact_arg(kind, &url)
            )));
        };
        delivery::check_protocol(&scheme)?;
        let url =
            if kind == "alertmanager" && !url.trim_end_matches('/').ends_with("/api/v2/alerts") {
                format!("{}/api/v2/alerts", url.trim_end_matches('/'))
            } else {
                url
            };
        let mut w = Webhook {
            end: Endpoint::new(kind, url),
            kind,
            shape: if kind == "alertmanager" {
                Shape::Alertmanager
            } else {
                Shape::Json
            },
            headers: Vec::new(),
            routing_key: Secret::default(),
            severity: "critical".into(),
            labels: Vec::new(),
            current: None,
            resolved: false,
            resolve: Duration::from_secs(300),
            generator: None,
        };
        for (k, v) in pairs {
            if w.end.key(k, v)? {
                continue;
            }
            match k {
                "shape" if kind == "webhook" => {
                    w.shape = match v.trim() {
                        "json" => Shape::Json,
                        "slack" | "mattermost" => Shape::Slack,
                        "pagerduty" => Shape::PagerDuty,
                        other => {
                            return Err(ActionError::from(format!(
                                "shape={other}: expected json, slack, mattermost or pagerduty"
                            )))
                        }
                    }
                }
                "header" => {
                    let Some((name, _)) = v.split_once(':').filter(|(n, _)| {
                        !n.trim().is_empty() && n.bytes().all(|b| b.is_ascii_graphic())
                    }) else {
                        return Err(ActionError::from(
                            "header=: expected header=Name: value".to_string(),
                        ));
                    };
                    let _ = name;
                    if v.contains(['\r', '\n']) {
                        return Err(ActionError::from("header=: a line break in a header"));
                    }
                    let h = Secret::new(v.trim());
                    w.end.hide(&h);
                    w.headers.push(h);
                }
                "routing_key" if kind == "webhook" => w.routing_key = Secret::new(v.trim()),
                "severity" if kind == "webhook" => {
                    w.severity = match v.trim() {
                        s @ ("critical" | "error" | "warning" | "info") => s.to_string(),
                        other => {
                            return Err(ActionError::from(format!(
                                "severity={other}: expected critical, error, warning or info"
                            )))
                        }
                    }
                }
                "resolve" if kind == "alertmanager" => {
                    w.resolve = v
                        .trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|&s| s >= 1)
                        .map(Duration::from_secs)
                        .ok_or_else(|| {
                            ActionError::from(format!(
                                "resolve={v}: expected whole seconds, 1 or more"
                            ))
                        })?;
                }
                "generator" if kind == "alertmanager" => w.generator = Some(v.trim().to_string()),
                k if kind == "alertmanager" && k.starts_with("label.") => {
                    let name = &k["label.".len()..];
                    let ok = !name.is_empty()
                        && !name.as_bytes()[0].is_ascii_digit()
                        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                    if !ok {
                        return Err(ActionError::from(format!(
                            "{k}: a label name is letters, digits and _, not starting with a digit"
                        )));
                    }
                    let t = crate::suppress::Template::parse(v)
                        .map_err(|e| ActionError::from(format!("{k}: {e}")))?;
                    w.labels.push((name.to_string(), t));
                }
                _ => warnings.push(format!("unknown {kind} key `{k}` ignored")),
            }
        }
        if w.shape == Shape::PagerDuty && w.routing_key.expose().is_empty() {
            return Err(ActionError::from(
                "shape=pagerduty needs routing_key= (the integration key)",
            ));
        }
        w.end.hide(&w.routing_key);
        Ok(w)
    }

    /// The JSON body for `msg` of `alarm`, at wall-clock time `now`.
    pub(crate) fn body(&self, alarm: &str, msg: &[u8], now: SystemTime) -> String {
        let text = String::from_utf8_lossy(msg);
        let text = text.trim_end_matches(['\n', '\r']);
        let host = crate::sys::uname().nodename;
        let time = rfc3339(now);
        match self.shape {
            Shape::Json => json!({"alarm": alarm, "message": text, "host": host, "time": time}),
            Shape::Slack => json!({"text": format!("[{alarm}] {text}")}),
            Shape::PagerDuty => json!({
                "routing_key": self.routing_key.expose(),
                "event_action": "trigger",
                "payload": {
                    "summary": format!("[{alarm}] {}", text.chars().take(1000).collect::<String>()),
                    "source": host,
                    "severity": self.severity,
                    "timestamp": time,
                    "custom_details": {"alarm": alarm, "message": text},
                },
            }),
            Shape::Alertmanager => {
                let mut labels = serde_json::Map::new();
                labels.insert("alertname".into(), alarm.into());
                labels.insert("instance".into(), host.clone().into());
                for (i, (k, t)) in self.labels.iter().enumerate() {
                    let v = match self.current.as_ref().and_then(|c| c.get(i)) {
                        Some(v) => String::from_utf8_lossy(v).into_owned(),
                        None => t.text(),
                    };
                    labels.insert(k.clone(), v.into());
                }
                let ends = if self.resolved {
                    now
                } else {
                    now + self.resolve
                };
                let generator = self
                    .generator
                    .clone()
                    .unwrap_or_else(|| format!("http://{host}/logalarm"));
                json!([{
                    "labels": labels,
                    "annotations": {"summary": text, "source": "logalarm"},
                    "startsAt": time,
                    "endsAt": rfc3339(ends),
                    "generatorURL": generator,
                }])
            }
        }
        .to_string()
    }

    /// The label templates (`alertmanager:`), in order.
    pub(crate) fn templates(&self) -> Vec<&crate::suppress::Template> {
        self.labels.iter().map(|(_, t)| t).collect()
    }

    /// The rendered label values and the resolution flag for the next delivery.
    pub(crate) fn prepare(&mut self, values: &[Vec<u8>], resolved: bool) {
        self.current = Some(values.to_vec());
        self.resolved = resolved;
    }

    /// Deliver one alarm; `Err` when it did not arrive.
    pub(crate) fn fire(
        &mut self,
        alarm: &str,
        msg: &[u8],
        raised: Instant,
        ctx: &Ctx,
    ) -> Result<(), delivery::Failure> {
        let body = self.body(alarm, msg, SystemTime::now());
        let mut headers = vec!["Content-Type: application/json".to_string()];
        headers.extend(self.headers.iter().map(|h| h.expose().to_string()));
        self.end.http(
            alarm,
            raised,
            &ctx.stopping,
            "POST",
            &headers,
            body.as_bytes(),
        )
    }
}

/// `t` as RFC 3339 UTC with milliseconds.
fn rfc3339(t: SystemTime) -> String {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    crate::replay::time::rfc3339(ms * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_escape_the_message() {
        let mut w = Vec::new();
        let hook = Webhook::parse("webhook", "http://h/x;shape=slack", &mut w).unwrap();
        let b = hook.body("db", b"a \"quoted\" \\ line\n", UNIX_EPOCH);
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["text"], "[db] a \"quoted\" \\ line");
        let am = Webhook::parse(
            "alertmanager",
            "http://h:9093;label.sev=page;resolve=60",
            &mut w,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&am.body("db", b"x", UNIX_EPOCH)).unwrap();
        assert_eq!(v[0]["labels"]["alertname"], "db");
        assert_eq!(v[0]["labels"]["sev"], "page");
        assert_eq!(v[0]["startsAt"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v[0]["endsAt"], "1970-01-01T00:01:00.000Z");
        assert!(Webhook::parse("webhook", "http://h;shape=pagerduty", &mut w).is_err());
        assert!(Webhook::parse("webhook", "http://h;header=nocolon", &mut w).is_err());
        assert!(Webhook::parse("alertmanager", "http://h;label.1x=a", &mut w).is_err());
        assert!(Webhook::parse("webhook", "ftp://h", &mut w).is_err());
    }
}
