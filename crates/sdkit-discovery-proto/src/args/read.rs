//! Arguments of the read endpoints: `fetch`, `fetchs`, `poll`/`polls`.

use super::{ArgError, FieldLimits, Reader};
use crate::Form;

/// `GET /discovery/fetch`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchArgs {
    /// Env (required).
    pub env: String,
    /// Appid (required).
    pub appid: String,
    /// Status bitmask (required, non-zero): 1 = UP, 2 = WAITING, 3 = both.
    pub status: u32,
    /// Zone filter; empty means every zone.
    pub zone: String,
}

impl FetchArgs {
    /// Decodes and validates a fetch query.
    pub fn from_form(form: &Form, limits: &FieldLimits) -> Result<Self, ArgError> {
        let r = Reader::new(form, limits)?;
        Ok(FetchArgs {
            env: r.env()?,
            appid: r.appid()?,
            status: required_status(&r)?,
            zone: r.string("zone", limits.max_label_len)?,
        })
    }

    /// Encodes as a query.
    pub fn to_form(&self) -> Form {
        let mut f = Form::new();
        f.append("env", &self.env)
            .append("appid", &self.appid)
            .append("status", self.status.to_string())
            .append_nonempty("zone", &self.zone);
        f
    }
}

fn required_status(r: &Reader<'_>) -> Result<u32, ArgError> {
    match r.u32("status")? {
        0 => Err(ArgError::Missing { field: "status" }),
        s => Ok(s),
    }
}

/// `GET /discovery/fetchs`: several apps at once; the answer holds only the apps found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchsArgs {
    /// Env (required).
    pub env: String,
    /// Appids (at least one), sent as repeated `appid`.
    pub appids: Vec<String>,
    /// Status bitmask (required, non-zero).
    pub status: u32,
    /// Zone filter; empty means every zone.
    pub zone: String,
}

impl FetchsArgs {
    /// Decodes and validates a fetchs query.
    pub fn from_form(form: &Form, limits: &FieldLimits) -> Result<Self, ArgError> {
        let r = Reader::new(form, limits)?;
        Ok(FetchsArgs {
            env: r.env()?,
            appids: appids(&r)?,
            status: required_status(&r)?,
            zone: r.string("zone", limits.max_label_len)?,
        })
    }

    /// Encodes as a query.
    pub fn to_form(&self) -> Form {
        let mut f = Form::new();
        f.append("env", &self.env);
        for a in &self.appids {
            f.append("appid", a);
        }
        f.append("status", self.status.to_string())
            .append_nonempty("zone", &self.zone);
        f
    }
}

fn appids(r: &Reader<'_>) -> Result<Vec<String>, ArgError> {
    let appids = r.list("appid", r.limits.max_appid_len, r.limits.max_appids)?;
    if appids.is_empty() {
        return Err(ArgError::Missing { field: "appid" });
    }
    Ok(appids)
}

/// `GET /discovery/polls` (and `poll`, which uses the first appid only).
///
/// `latest_timestamps` pairs with `appids`; `polls` refuses a length mismatch, `poll` treats
/// it as all zeros ([`PollsArgs::cursors`] gives both readings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollsArgs {
    /// Env (required).
    pub env: String,
    /// The watcher's identity (required). Use a unique value per watcher.
    pub hostname: String,
    /// Appids (at least one).
    pub appids: Vec<String>,
    /// The cursors the client holds, one per appid (0 = nothing yet).
    pub latest_timestamps: Vec<i64>,
    /// Zone filter; empty means every zone.
    pub zone: String,
}

impl PollsArgs {
    /// Decodes and validates a polls query (lengths are not compared here).
    pub fn from_form(form: &Form, limits: &FieldLimits) -> Result<Self, ArgError> {
        let r = Reader::new(form, limits)?;
        Ok(PollsArgs {
            env: r.env()?,
            hostname: r.hostname()?,
            appids: appids(&r)?,
            latest_timestamps: r.i64_list("latest_timestamp", limits.max_appids)?,
            zone: r.string("zone", limits.max_label_len)?,
        })
    }

    /// The cursor of each appid. With `strict`, a count mismatch is an error (`polls`);
    /// otherwise it means all zeros (`poll`).
    pub fn cursors(&self, strict: bool) -> Result<Vec<i64>, ArgError> {
        if self.latest_timestamps.len() == self.appids.len() {
            Ok(self.latest_timestamps.clone())
        } else if strict {
            Err(ArgError::LengthMismatch {
                field: "latest_timestamp",
                len: self.latest_timestamps.len(),
                other: "appid",
                other_len: self.appids.len(),
            })
        } else {
            Ok(vec![0; self.appids.len()])
        }
    }

    /// Encodes as a query (repeated `appid` / `latest_timestamp`).
    pub fn to_form(&self) -> Form {
        let mut f = Form::new();
        f.append("env", &self.env)
            .append("hostname", &self.hostname);
        for a in &self.appids {
            f.append("appid", a);
        }
        for t in &self.latest_timestamps {
            f.append("latest_timestamp", t.to_string());
        }
        f.append_nonempty("zone", &self.zone);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_pairs_cursors() {
        let f = Form::parse(
            b"env=e&hostname=w&appid=a&appid=&appid=b&latest_timestamp=1&latest_timestamp=",
            20,
        )
        .unwrap();
        let args = PollsArgs::from_form(&f, &FieldLimits::default()).unwrap();
        assert_eq!(args.appids, ["a", "b"]);
        assert!(args.cursors(true).is_err());
        assert_eq!(args.cursors(false).unwrap(), [0, 0]);
        assert_eq!(
            PollsArgs::from_form(&args.to_form(), &FieldLimits::default()).unwrap(),
            args
        );
    }

    #[test]
    fn fetch_requires_status() {
        let f = Form::parse(b"env=e&appid=a&status=0", 20).unwrap();
        assert_eq!(
            FetchArgs::from_form(&f, &FieldLimits::default())
                .unwrap_err()
                .field(),
            "status"
        );
        let f = Form::parse(b"env=e&appid=a&status=-1", 20).unwrap();
        assert!(matches!(
            FetchArgs::from_form(&f, &FieldLimits::default()),
            Err(ArgError::InvalidInt { .. })
        ));
    }

    #[test]
    fn too_many_appids() {
        let limits = FieldLimits {
            max_appids: 2,
            ..FieldLimits::default()
        };
        let f = Form::parse(b"env=e&appid=a&appid=b&appid=c&status=1", 20).unwrap();
        assert_eq!(
            FetchsArgs::from_form(&f, &limits).unwrap_err(),
            ArgError::TooMany {
                field: "appid",
                max: 2
            }
        );
    }
}
