//! Human durations in configuration, URLs and on the command line: `250ms`, `10s`, `1m30s`,
//! `2h`, or a bare number of seconds — one grammar for every crate of sdkit.
//!
//! In serde configurations use [`deserialize`]: a string in this grammar, or a number of seconds.
//!
//! ```
//! use std::time::Duration;
//! #[derive(serde::Deserialize)]
//! struct Config {
//!     #[serde(deserialize_with = "sdkit_core::duration::deserialize")]
//!     ttl: Duration,
//! }
//! let c: Config = serde_json::from_str(r#"{"ttl": "1m30s"}"#).unwrap();
//! assert_eq!(c.ttl, Duration::from_secs(90));
//! let c: Config = serde_json::from_str(r#"{"ttl": 2.5}"#).unwrap();
//! assert_eq!(c.ttl, Duration::from_millis(2500));
//! ```

use std::time::Duration;

/// Parses `250ms`, `10s`, `1m30s`, `1.5s`, `2h`, `500us` or a bare number of seconds.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(sdkit_core::duration::parse("1m30s"), Ok(Duration::from_secs(90)));
/// assert_eq!(sdkit_core::duration::parse("250ms"), Ok(Duration::from_millis(250)));
/// assert_eq!(sdkit_core::duration::parse("5"), Ok(Duration::from_secs(5)));
/// assert!(sdkit_core::duration::parse("5 parsecs").is_err());
/// ```
///
/// # Errors
///
/// A message naming what is wrong.
pub fn parse(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = s.parse::<f64>() {
        return seconds(secs, input);
    }
    let mut total = 0.0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "`{input}` is not a duration (e.g. 500ms, 10s, 1m30s)"
            ));
        }
        let value: f64 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{input}` is not a duration (e.g. 500ms, 10s, 1m30s)"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => {
                return Err(format!(
                    "`{input}`: unknown unit `{other}` (use ns, us, ms, s, m or h)"
                ));
            }
        };
        total += value * factor;
        rest = &rest[unit_len..];
    }
    seconds(total, input)
}

fn seconds(secs: f64, input: &str) -> Result<Duration, String> {
    if !secs.is_finite() || !(0.0..=1e12).contains(&secs) {
        return Err(format!("`{input}` is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Deserializes a duration from a string in the [`parse`] grammar or a number of seconds.
///
/// # Errors
///
/// The deserializer's error, naming the text that is not a duration.
pub fn deserialize<'de, D>(deserializer: D) -> Result<Duration, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(f64),
        Text(String),
    }
    match <Raw as serde::Deserialize>::deserialize(deserializer)? {
        Raw::Seconds(secs) => seconds(secs, &secs.to_string()).map_err(serde::de::Error::custom),
        Raw::Text(text) => parse(&text).map_err(serde::de::Error::custom),
    }
}

/// Formats a duration the way [`parse`] reads it (`1m30s`, `250ms`).
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return format!("{}us", d.as_micros());
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    match (secs / 3600, (secs % 3600) / 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects() {
        for d in [
            Duration::from_millis(250),
            Duration::from_secs(90),
            Duration::from_secs(3600),
            Duration::from_secs(3661),
            Duration::from_micros(5),
        ] {
            assert_eq!(parse(&format(d)), Ok(d), "{}", format(d));
        }
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        for bad in ["", "s", "10x", "-1s", "1e400", "ms10", "5 s"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
