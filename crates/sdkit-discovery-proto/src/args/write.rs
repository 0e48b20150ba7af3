//! Arguments of the write endpoints: `register`, `renew`, `cancel`, `set`.

use super::{ArgError, FieldLimits, Reader};
use crate::{Form, Metadata, Status, parse_metadata, split_addrs};

/// Parses and bounds a metadata JSON string (empty means no metadata).
fn metadata(field: &'static str, raw: &str, limits: &FieldLimits) -> Result<Metadata, ArgError> {
    if raw.is_empty() {
        return Ok(Metadata::new());
    }
    if raw.len() > limits.max_metadata_len {
        return Err(ArgError::TooLong {
            field,
            max: limits.max_metadata_len,
        });
    }
    parse_metadata(raw).map_err(|e| ArgError::InvalidMetadata {
        field,
        reason: e.to_string(),
    })
}

fn metadata_json(m: &Metadata) -> String {
    serde_json::to_string(m).unwrap_or_default()
}

/// `POST /discovery/register`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterArgs {
    /// Region (stored only).
    pub region: String,
    /// Zone (required).
    pub zone: String,
    /// Env (required).
    pub env: String,
    /// Appid (required).
    pub appid: String,
    /// Hostname (required).
    pub hostname: String,
    /// 1 = UP, 2 = WAITING (required; anything else is refused).
    pub status: u32,
    /// Addresses (at least one). Sent as repeated parameters; comma-joined values are split.
    pub addrs: Vec<String>,
    /// Version.
    pub version: String,
    /// Metadata, sent as a JSON object string.
    pub metadata: Metadata,
    /// Peer replication (do not re-replicate).
    pub replication: bool,
    /// Replication: the origin's cursor.
    pub latest_timestamp: i64,
    /// Replication: overrides the new instance's dirty timestamp when > 0.
    pub dirty_timestamp: i64,
    /// Came from another zone.
    pub from_zone: bool,
}

impl RegisterArgs {
    /// Decodes and validates a register form.
    pub fn from_form(form: &Form, limits: &FieldLimits) -> Result<Self, ArgError> {
        let r = Reader::new(form, limits)?;
        let zone = r.zone()?;
        let env = r.env()?;
        let appid = r.appid()?;
        let hostname = r.hostname()?;
        let status = r.u32("status")?;
        if status == 0 {
            return Err(ArgError::Missing { field: "status" });
        }
        if Status::from_u32(status).is_none() {
            return Err(ArgError::InvalidStatus {
                field: "status",
                value: i64::from(status),
            });
        }
        // Bound the raw values first, then split comma-joined ones and bound the result.
        let raw = r.list(
            "addrs",
            limits.max_addr_len * limits.max_addrs,
            limits.max_addrs,
        )?;
        let addrs = split_addrs(&raw);
        if addrs.is_empty() {
            return Err(ArgError::Missing { field: "addrs" });
        }
        if addrs.len() > limits.max_addrs {
            return Err(ArgError::TooMany {
                field: "addrs",
                max: limits.max_addrs,
            });
        }
        if addrs.iter().any(|a| a.len() > limits.max_addr_len) {
            return Err(ArgError::TooLong {
                field: "addrs",
                max: limits.max_addr_len,
            });
        }
        Ok(RegisterArgs {
            region: r.string("region", limits.max_label_len)?,
            zone,
            env,
            appid,
            hostname,
            status,
            addrs,
            version: r.string("version", limits.max_version_len)?,
            metadata: metadata("metadata", form.get("metadata").unwrap_or_default(), limits)?,
            replication: r.bool("replication"),
            latest_timestamp: r.i64("latest_timestamp")?,
            dirty_timestamp: r.i64("dirty_timestamp")?,
            from_zone: r.bool("from_zone"),
        })
    }

    /// Encodes as a form (repeated `addrs`, metadata as JSON).
    pub fn to_form(&self) -> Form {
        let mut f = Form::new();
        f.append_nonempty("region", &self.region)
            .append("zone", &self.zone)
            .append("env", &self.env)
            .append("appid", &self.appid)
            .append("hostname", &self.hostname)
            .append("status", self.status.to_string());
        for addr in &self.addrs {
            f.append("addrs", addr);
        }
        f.append_nonempty("version", &self.version);
        if !self.metadata.is_empty() {
            f.append("metadata", metadata_json(&self.metadata));
        }
        f.append_flag("replication", self.replication);
        f.append_nonzero("latest_timestamp", self.latest_timestamp);
        f.append_nonzero("dirty_timestamp", self.dirty_timestamp);
        f.append_flag("from_zone", self.from_zone);
        f
    }
}

/// `POST /discovery/renew`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenewArgs {
    /// Zone (required).
    pub zone: String,
    /// Env (required).
    pub env: String,
    /// Appid (required).
    pub appid: String,
    /// Hostname (required).
    pub hostname: String,
    /// Peer replication.
    pub replication: bool,
    /// Replication: the sender's dirty timestamp.
    pub dirty_timestamp: i64,
    /// Came from another zone.
    pub from_zone: bool,
}

impl RenewArgs {
    /// Decodes and validates a renew form.
    pub fn from_form(form: &Form, limits: &FieldLimits) -> Result<Self, ArgError> {
        let r = Reader::new(form, limits)?;
        Ok(RenewArgs {
            zone: r.zone()?,
            env: r.env()?,
            appid: r.appid()?,
            hostname: r.hostname()?,
            replication: r.bool("replication"),
            dirty_timestamp: r.i64("dirty_timestamp")?,
            from_zone: r.bool("from_zone"),
        })
    }

    /// Encodes as a form.
    pub fn to_form(&self) -> Form {
        let mut f = Form::new();
        f.append("zone", &self.zone)
            .append("env", &self.env)
            .append("appid", &self.appid)
            .append("hostname", &self.hostname);
        f.append_flag("replication", self.replication);
        f.append_nonzero("dirty_timestamp", self.dirty_timestamp);
        f.append_flag("from_zone", self.from_zone);
        f
    }
}

/// `POST /discovery/cancel`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CancelArgs {
    /// Zone (required).
    pub zone: String,
    /// Env (required).
    pub env: String,
    /// Appid (required).
    pub appid: String,
    /// Hostname (required).
    pub hostname: String,
    /// Peer replication.
    pub replication: bool,
    /// Came from another zone.
    pub from_zone: bool,
    /// Replication: the origin's cursor (0 from clients).
    pub latest_timestamp: i64,
}

impl CancelArgs {
    /// Decodes and validates a cancel form.
    pub fn from_form(form: &Form, limits: &FieldLimits) -> Result<Self, ArgError> {
        let r = Reader::new(form, limits)?;
        Ok(CancelArgs {
            zone: r.zone()?,
            env: r.env()?,
            appid: r.appid()?,
            hostname: r.hostname()?,
            replication: r.bool("replication"),
            from_zone: r.bool("from_zone"),
            latest_timestamp: r.i64("latest_timestamp")?,
        })
    }

    /// Encodes as a form.
    pub fn to_form(&self) -> Form {
        let mut f = Form::new();
        f.append("zone", &self.zone)
            .append("env", &self.env)
            .append("appid", &self.appid)
            .append("hostname", &self.hostname);
        f.append_flag("replication", self.replication);
        f.append_flag("from_zone", self.from_zone);
        f.append_nonzero("latest_timestamp", self.latest_timestamp);
        f
    }
}

/// `POST /discovery/set`: change status and/or merge metadata of some instances.
///
/// `statuses` and `metadata` are each either empty or as long as `hostnames`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetArgs {
    /// Region (unused).
    pub region: String,
    /// Zone (required).
    pub zone: String,
    /// Env (required).
    pub env: String,
    /// Appid (required).
    pub appid: String,
    /// Target hostnames (at least one).
    pub hostnames: Vec<String>,
    /// New statuses (1 or 2), parallel to `hostnames`, or empty.
    pub statuses: Vec<u32>,
    /// Metadata to merge, parallel to `hostnames`, or empty.
    pub metadata: Vec<Metadata>,
    /// 0 means the server's now.
    pub set_timestamp: i64,
    /// Peer replication.
    pub replication: bool,
    /// Came from another zone.
    pub from_zone: bool,
}

impl SetArgs {
    /// Decodes and validates a set form; every status and metadata is checked up front.
    pub fn from_form(form: &Form, limits: &FieldLimits) -> Result<Self, ArgError> {
        let r = Reader::new(form, limits)?;
        let zone = r.zone()?;
        let env = r.env()?;
        let appid = r.appid()?;
        let hostnames = r.list("hostname", limits.max_hostname_len, limits.max_hostnames)?;
        if hostnames.is_empty() {
            return Err(ArgError::Missing { field: "hostname" });
        }
        let statuses = r.i64_list("status", limits.max_hostnames)?;
        let raw_metadata = r.list("metadata", limits.max_metadata_len, limits.max_hostnames)?;
        for (field, len) in [("status", statuses.len()), ("metadata", raw_metadata.len())] {
            if len != 0 && len != hostnames.len() {
                return Err(ArgError::LengthMismatch {
                    field,
                    len,
                    other: "hostname",
                    other_len: hostnames.len(),
                });
            }
        }
        let statuses = statuses
            .into_iter()
            .map(|s| match u32::try_from(s).ok().and_then(Status::from_u32) {
                Some(status) => Ok(status.as_u32()),
                None => Err(ArgError::InvalidStatus {
                    field: "status",
                    value: s,
                }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let metadata = raw_metadata
            .iter()
            .map(|m| metadata("metadata", m, limits))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SetArgs {
            region: r.string("region", limits.max_label_len)?,
            zone,
            env,
            appid,
            hostnames,
            statuses,
            metadata,
            set_timestamp: r.i64("set_timestamp")?,
            replication: r.bool("replication"),
            from_zone: r.bool("from_zone"),
        })
    }

    /// Encodes as a form (repeated `hostname`, `status`, `metadata`).
    pub fn to_form(&self) -> Form {
        let mut f = Form::new();
        f.append_nonempty("region", &self.region)
            .append("zone", &self.zone)
            .append("env", &self.env)
            .append("appid", &self.appid);
        for h in &self.hostnames {
            f.append("hostname", h);
        }
        for s in &self.statuses {
            f.append("status", s.to_string());
        }
        for m in &self.metadata {
            f.append("metadata", metadata_json(m));
        }
        f.append_nonzero("set_timestamp", self.set_timestamp);
        f.append_flag("replication", self.replication);
        f.append_flag("from_zone", self.from_zone);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> FieldLimits {
        FieldLimits::default()
    }

    fn register_form(extra: &str) -> Form {
        let base = "zone=sh001&env=pre&appid=main.arch.test&hostname=h1&status=1&addrs=grpc://1.2.3.4:9000";
        Form::parse(format!("{base}{extra}").as_bytes(), 100).unwrap()
    }

    #[test]
    fn register_round_trip() {
        let args = RegisterArgs::from_form(
            &register_form("&metadata=%7B%22weight%22%3A%2210%22%7D&addrs=http://a:1,grpc://a:2&dirty_timestamp=1525948301833084711"),
            &limits(),
        )
        .unwrap();
        assert_eq!(
            args.addrs,
            ["grpc://1.2.3.4:9000", "http://a:1", "grpc://a:2"]
        );
        assert_eq!(args.metadata["weight"], "10");
        assert_eq!(args.dirty_timestamp, 1_525_948_301_833_084_711);
        let again = RegisterArgs::from_form(&args.to_form(), &limits()).unwrap();
        assert_eq!(again, args);
    }

    #[test]
    fn register_errors_name_the_field() {
        let long = format!("&hostname=x&zone={}", "z".repeat(65));
        assert!(
            RegisterArgs::from_form(&register_form(&long), &limits()).is_ok(),
            "first value wins"
        );
        let f = Form::parse(format!("zone={}", "z".repeat(65)).as_bytes(), 10).unwrap();
        assert_eq!(
            RegisterArgs::from_form(&f, &limits()).unwrap_err(),
            ArgError::TooLong {
                field: "zone",
                max: 64
            }
        );
        let f = Form::parse(b"zone=z&env=e&appid=a&hostname=h&addrs=x&status=x", 10).unwrap();
        assert!(matches!(
            RegisterArgs::from_form(&f, &limits()),
            Err(ArgError::InvalidInt {
                field: "status",
                ..
            })
        ));
        let f = Form::parse(b"zone=z&env=e&appid=a&hostname=h&addrs=x", 10).unwrap();
        assert_eq!(
            RegisterArgs::from_form(&f, &limits()).unwrap_err().field(),
            "status"
        );
        let f = Form::parse(b"zone=z&env=e&appid=a&hostname=h&status=3&addrs=x", 10).unwrap();
        assert!(matches!(
            RegisterArgs::from_form(&f, &limits()),
            Err(ArgError::InvalidStatus { .. })
        ));
        let f = Form::parse(b"zone=z&env=e&appid=a&hostname=h&status=1", 10).unwrap();
        assert_eq!(
            RegisterArgs::from_form(&f, &limits()).unwrap_err().field(),
            "addrs"
        );
        let f = Form::parse(
            b"zone=z&env=e&appid=a&hostname=h&status=1&addrs=x&metadata=%7B",
            10,
        )
        .unwrap();
        assert_eq!(
            RegisterArgs::from_form(&f, &limits()).unwrap_err().field(),
            "metadata"
        );
        let f = Form::parse(b"env=e&appid=a&hostname=h&status=1&addrs=x", 10).unwrap();
        assert_eq!(
            RegisterArgs::from_form(&f, &limits()).unwrap_err(),
            ArgError::Missing { field: "zone" }
        );
    }

    #[test]
    fn set_checks_lengths_and_statuses() {
        let f = Form::parse(b"zone=z&env=e&appid=a&hostname=h1&hostname=h2&status=1", 20).unwrap();
        assert!(matches!(
            SetArgs::from_form(&f, &limits()),
            Err(ArgError::LengthMismatch {
                field: "status",
                ..
            })
        ));
        let f = Form::parse(b"zone=z&env=e&appid=a&hostname=h1&status=5", 20).unwrap();
        assert!(matches!(
            SetArgs::from_form(&f, &limits()),
            Err(ArgError::InvalidStatus { value: 5, .. })
        ));
        let f = Form::parse(b"zone=z&env=e&appid=a", 20).unwrap();
        assert_eq!(
            SetArgs::from_form(&f, &limits()).unwrap_err().field(),
            "hostname"
        );
        let f = Form::parse(b"zone=z&env=e&appid=a&hostname=h1&hostname=h2&metadata=%7B%7D&metadata=%7B%22a%22%3A%22b%22%7D", 20).unwrap();
        let args = SetArgs::from_form(&f, &limits()).unwrap();
        assert_eq!(args.metadata[1]["a"], "b");
        assert_eq!(
            SetArgs::from_form(&args.to_form(), &limits()).unwrap(),
            args
        );
    }
}
