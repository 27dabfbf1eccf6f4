//! The node-log part of the staging bucket's layout (docs/staging-layout.md), and
//! the clock that decides which hour a log line belongs to.
//!
//! Keys here are relative to the staging prefix:
//!
//! ```text
//! logs/<cluster>/<instance>/<service>/<yyyy>/<mm>/<dd>/<hh>/<part>.log[.gz]
//! logs/<cluster>/<instance>/<service>/<yyyy>/<mm>/<dd>/<hh>/compacted-<gen>.log.gz
//! logs/<cluster>/<instance>/<service>/<yyyy>/<mm>/<dd>/<hh>/compacted-<gen>.json
//! ```
//!
//! Agents upload parts; log rotation folds an hour's parts into one compacted
//! object, whose manifest (the `.json`) records the parts it holds.

use serde::{Deserialize, Serialize};

use crate::time::{format_ms, hour_start_ms};

/// One hour of one service on one node: the unit log rotation compacts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogHour {
    pub cluster_id: i64,
    pub instance_id: String,
    pub service: String,
    /// Epoch milliseconds of the hour's start, on the [`LogClock`].
    pub start_ms: i64,
}

/// What a key under `logs/` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogKey {
    /// A part an agent uploaded; gzip when its name ends in `.gz`.
    Part { hour: LogHour, gzip: bool },
    /// Generation `gen` of the hour's compacted object.
    Compacted { hour: LogHour, generation: u32 },
    /// The manifest that commits generation `gen`.
    Manifest { hour: LogHour, generation: u32 },
}

impl LogKey {
    pub fn hour(&self) -> &LogHour {
        match self {
            LogKey::Part { hour, .. } | LogKey::Compacted { hour, .. } | LogKey::Manifest { hour, .. } => {
                hour
            }
        }
    }
}

pub const LOGS: &str = "logs/";
const COMPACTED: &str = "compacted-";

impl LogHour {
    /// `logs/<cluster>/<instance>/<service>/<yyyy>/<mm>/<dd>/<hh>/`.
    pub fn prefix(&self) -> String {
        let s = format_ms(self.start_ms);
        format!(
            "{LOGS}{}/{}/{}/{}/{}/{}/{}/",
            self.cluster_id,
            self.instance_id,
            self.service,
            &s[0..4],
            &s[5..7],
            &s[8..10],
            &s[11..13]
        )
    }

    /// The hour that holds `log_ms` (a time on the [`LogClock`]).
    pub fn containing(cluster_id: i64, instance_id: &str, service: &str, log_ms: i64) -> LogHour {
        LogHour {
            cluster_id,
            instance_id: instance_id.to_owned(),
            service: service.to_owned(),
            start_ms: log_ms - log_ms.rem_euclid(HOUR_MS),
        }
    }

    /// The key of a part uploaded at `log_ms`, plain text.
    pub fn part_key(&self, log_ms: i64) -> String {
        format!("{}{log_ms}.log", self.prefix())
    }

    pub fn compacted_key(&self, generation: u32) -> String {
        format!("{}{COMPACTED}{generation:06}.log.gz", self.prefix())
    }

    pub fn manifest_key(&self, generation: u32) -> String {
        format!("{}{COMPACTED}{generation:06}.json", self.prefix())
    }

    /// `YYYY-MM-DD HH`, for messages.
    pub fn label(&self) -> String {
        format!(
            "cluster {} {} {} {}h",
            self.cluster_id,
            self.instance_id,
            self.service,
            &format_ms(self.start_ms)[..13]
        )
    }
}

/// Sorts a key under `logs/` into the layout, or says why it is outside it.
pub fn parse_log_key(key: &str) -> Result<LogKey, String> {
    let rest = key
        .strip_prefix(LOGS)
        .ok_or_else(|| format!("{key:?} is not under {LOGS}"))?;
    let parts: Vec<&str> = rest.split('/').collect();
    let [cluster, instance, service, y, m, d, h, name] = parts[..] else {
        return Err(format!(
            "{key:?} does not have the shape logs/<cluster>/<instance>/<service>/<yyyy>/<mm>/<dd>/<hh>/<file>"
        ));
    };
    let cluster_id = cluster
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0 && !cluster.starts_with('+'))
        .ok_or_else(|| format!("{key:?}: {cluster:?} is not a cluster id"))?;
    let instance_ok = instance
        .strip_prefix("i-")
        .is_some_and(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()));
    if !instance_ok {
        return Err(format!("{key:?}: {instance:?} is not an instance id"));
    }
    let service_ok = !service.is_empty()
        && service
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !service_ok {
        return Err(format!("{key:?}: {service:?} is not a service name"));
    }
    let num = |s: &str, width: usize| {
        (s.len() == width && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    let start_ms = match (num(y, 4), num(m, 2), num(d, 2), num(h, 2)) {
        (Some(y), Some(m), Some(d), Some(h)) => hour_start_ms(i64::from(y), m, d, h),
        _ => None,
    }
    .ok_or_else(|| format!("{key:?}: {y}/{m}/{d}/{h} is not an hour (yyyy/mm/dd/hh)"))?;
    let hour = LogHour {
        cluster_id,
        instance_id: instance.to_owned(),
        service: service.to_owned(),
        start_ms,
    };
    if let Some(tail) = name.strip_prefix(COMPACTED) {
        let generation = |digits: &str| (digits.len() == 6).then(|| digits.parse::<u32>().ok()).flatten();
        if let Some(g) = tail.strip_suffix(".log.gz").and_then(generation) {
            return Ok(LogKey::Compacted { hour, generation: g });
        }
        if let Some(g) = tail.strip_suffix(".json").and_then(generation) {
            return Ok(LogKey::Manifest { hour, generation: g });
        }
        return Err(format!("{key:?}: {name:?} is not a compacted object or manifest"));
    }
    let stem_ok = |stem: &str| {
        !stem.is_empty()
            && stem
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    };
    if name.strip_suffix(".log.gz").is_some_and(stem_ok) {
        return Ok(LogKey::Part { hour, gzip: true });
    }
    if name.strip_suffix(".log").is_some_and(stem_ok) {
        return Ok(LogKey::Part { hour, gzip: false });
    }
    Err(format!(
        "{key:?}: {name:?} is not a log part (<name>.log or <name>.log.gz)"
    ))
}

/// Milliseconds in an hour of the log clock.
pub const HOUR_MS: i64 = 3_600_000;

/// The clock log keys are written and rotated by. In AWS it is the wall clock. A
/// demo or a test may shorten the hour (`dm-local up --hour-seconds 60`): the log
/// clock then runs faster than the wall clock from an anchor on, so that hours
/// close every minute while keys keep the real layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogClock {
    /// A wall-clock instant and the log-clock time it maps to.
    pub real_anchor_ms: i64,
    pub log_anchor_ms: i64,
    /// Wall-clock milliseconds in one log-clock hour.
    pub hour_ms: i64,
}

impl Default for LogClock {
    fn default() -> Self {
        LogClock::WALL
    }
}

impl LogClock {
    /// The wall clock.
    pub const WALL: LogClock = LogClock {
        real_anchor_ms: 0,
        log_anchor_ms: 0,
        hour_ms: HOUR_MS,
    };

    /// A clock whose hours last `hour_seconds` of wall time, continuing from
    /// `previous` at `real_now_ms` so that log time never runs backwards.
    pub fn shortened(hour_seconds: u32, previous: LogClock, real_now_ms: i64) -> LogClock {
        LogClock {
            real_anchor_ms: real_now_ms,
            log_anchor_ms: previous.at(real_now_ms),
            hour_ms: i64::from(hour_seconds.max(1)) * 1000,
        }
    }

    /// The log-clock time at wall-clock `real_ms`.
    pub fn at(&self, real_ms: i64) -> i64 {
        if self.hour_ms == HOUR_MS {
            return self.log_anchor_ms + (real_ms - self.real_anchor_ms);
        }
        let elapsed =
            i128::from(real_ms - self.real_anchor_ms) * i128::from(HOUR_MS) / i128::from(self.hour_ms);
        self.log_anchor_ms + elapsed as i64
    }

    pub fn now(&self) -> i64 {
        self.at(crate::time::now_ms())
    }

    /// Wall-clock milliseconds that `log_ms` of log time take.
    pub fn real_duration_ms(&self, log_ms: i64) -> i64 {
        (i128::from(log_ms) * i128::from(self.hour_ms) / i128::from(HOUR_MS)) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 1_764_086_400_000; // 2025-11-25 16:00 UTC

    fn hour() -> LogHour {
        LogHour::containing(7, "i-0abc", "planner", HOUR + 1234)
    }

    #[test]
    fn keys_round_trip() {
        let h = hour();
        assert_eq!(h.prefix(), "logs/7/i-0abc/planner/2025/11/25/16/");
        assert_eq!(
            parse_log_key(&h.part_key(HOUR + 5)),
            Ok(LogKey::Part {
                hour: h.clone(),
                gzip: false
            })
        );
        assert_eq!(
            parse_log_key(&format!("{}1764086400005-a.log.gz", h.prefix())),
            Ok(LogKey::Part {
                hour: h.clone(),
                gzip: true
            })
        );
        assert_eq!(
            parse_log_key(&h.compacted_key(3)),
            Ok(LogKey::Compacted {
                hour: h.clone(),
                generation: 3
            })
        );
        assert_eq!(
            parse_log_key(&h.manifest_key(12)),
            Ok(LogKey::Manifest {
                hour: h,
                generation: 12
            })
        );
    }

    #[test]
    fn keys_outside_the_layout_say_why() {
        for (key, why) in [
            ("config/7/1/x", "not under logs/"),
            ("logs/7/i-0abc/planner/2025/11/25/16.log", "shape"),
            ("logs/7/i-0abc/planner/2025/11/25/16/deep/1.log", "shape"),
            ("logs/x/i-0abc/planner/2025/11/25/16/1.log", "cluster id"),
            ("logs/0/i-0abc/planner/2025/11/25/16/1.log", "cluster id"),
            ("logs/7/host1/planner/2025/11/25/16/1.log", "instance id"),
            ("logs/7/i-0abc/Planner/2025/11/25/16/1.log", "service name"),
            ("logs/7/i-0abc/planner/2025/02/30/16/1.log", "not an hour"),
            ("logs/7/i-0abc/planner/2025/11/25/24/1.log", "not an hour"),
            ("logs/7/i-0abc/planner/25/11/25/16/1.log", "not an hour"),
            ("logs/7/i-0abc/planner/2025/11/25/16/1.txt", "not a log part"),
            ("logs/7/i-0abc/planner/2025/11/25/16/.log", "not a log part"),
            (
                "logs/7/i-0abc/planner/2025/11/25/16/compacted-1.log.gz",
                "compacted",
            ),
        ] {
            let err = parse_log_key(key).expect_err(key);
            assert!(err.contains(why), "{key}: {err}");
        }
    }

    #[test]
    fn the_wall_clock_is_the_identity() {
        assert_eq!(LogClock::WALL.at(HOUR + 17), HOUR + 17);
    }

    #[test]
    fn a_shortened_clock_runs_faster_and_never_backwards() {
        let clock = LogClock::shortened(60, LogClock::WALL, HOUR);
        assert_eq!(clock.at(HOUR), HOUR);
        assert_eq!(clock.at(HOUR + 60_000), HOUR + HOUR_MS);
        assert_eq!(clock.real_duration_ms(HOUR_MS), 60_000);
        // Restarted later with another length, it carries on from where it was.
        let later = LogClock::shortened(120, clock, HOUR + 90_000);
        assert_eq!(later.at(HOUR + 90_000), HOUR + HOUR_MS + HOUR_MS / 2);
        assert_eq!(later.at(HOUR + 210_000), HOUR + 2 * HOUR_MS + HOUR_MS / 2);
    }
}
