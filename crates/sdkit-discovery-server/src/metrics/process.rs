//! The process's own metrics, read from `/proc/self` (Linux; elsewhere they are left out):
//! the standard `process_*` names of the Prometheus client libraries.

use super::metric;

/// Clock ticks per second of `/proc` times: fixed at 100 by the kernel's user ABI
/// (`USER_HZ`), whatever the kernel's internal tick rate.
const USER_HZ: f64 = 100.0;

/// Figures read from `/proc`; `None` when unavailable.
#[derive(Debug, Default, PartialEq)]
struct Process {
    cpu_seconds: Option<f64>,
    start_time_seconds: Option<f64>,
    resident_bytes: Option<u64>,
    virtual_bytes: Option<u64>,
    open_fds: Option<u64>,
    max_fds: Option<u64>,
}

/// Appends the `process_*` metrics that could be read.
pub(super) fn render(out: &mut String) {
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    let status = std::fs::read_to_string("/proc/self/status").ok();
    let boot = std::fs::read_to_string("/proc/stat").ok();
    let limits = std::fs::read_to_string("/proc/self/limits").ok();
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|dir| dir.count() as u64);
    let p = parse(
        stat.as_deref(),
        status.as_deref(),
        boot.as_deref(),
        limits.as_deref(),
        open_fds,
    );
    let floats = [
        (
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, in seconds.",
            p.cpu_seconds,
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch, in seconds.",
            p.start_time_seconds,
        ),
    ];
    for (name, kind, help, value) in floats {
        if let Some(v) = value {
            metric(out, name, kind, help, v);
        }
    }
    let ints = [
        (
            "process_resident_memory_bytes",
            "Resident memory size, in bytes.",
            p.resident_bytes,
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size, in bytes.",
            p.virtual_bytes,
        ),
        ("process_open_fds", "Open file descriptors.", p.open_fds),
        (
            "process_max_fds",
            "Limit on open file descriptors.",
            p.max_fds,
        ),
    ];
    for (name, help, value) in ints {
        if let Some(v) = value {
            metric(out, name, "gauge", help, v);
        }
    }
}

/// Parses the texts of `/proc/self/stat`, `/proc/self/status`, `/proc/stat` and
/// `/proc/self/limits`.
fn parse(
    stat: Option<&str>,
    status: Option<&str>,
    boot: Option<&str>,
    limits: Option<&str>,
    open_fds: Option<u64>,
) -> Process {
    // Fields after the command name, which is in parentheses and may hold spaces; the first
    // of them is field 3 of proc(5).
    let fields: Vec<&str> = stat
        .and_then(|s| s.rsplit_once(')'))
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    let cpu_seconds = match (field(14), field(15)) {
        (Some(utime), Some(stime)) => Some((utime + stime) as f64 / USER_HZ),
        _ => None,
    };
    let btime: Option<u64> = boot.and_then(|b| {
        b.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse().ok())
    });
    let start_time_seconds = match (btime, field(22)) {
        (Some(btime), Some(ticks)) => Some(btime as f64 + ticks as f64 / USER_HZ),
        _ => None,
    };
    let kib = |key: &str| -> Option<u64> {
        let line = status?.lines().find_map(|l| l.strip_prefix(key))?;
        let kb: u64 = line.trim().trim_end_matches("kB").trim().parse().ok()?;
        kb.checked_mul(1024)
    };
    let max_fds = limits.and_then(|l| {
        let line = l.lines().find_map(|l| l.strip_prefix("Max open files"))?;
        line.split_whitespace().next()?.parse().ok()
    });
    Process {
        cpu_seconds,
        start_time_seconds,
        resident_bytes: kib("VmRSS:"),
        virtual_bytes: field(23),
        open_fds,
        max_fds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_texts() {
        // A command name with spaces and a parenthesis, as proc(5) allows.
        let stat = "4242 (sdk it) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 \
                    9 0 123400 1048576000 5000 18446744073709551615";
        let status = "Name:\tsdkit\nVmSize:\t 1024000 kB\nVmRSS:\t   20000 kB\n";
        let boot = "cpu  1 2 3\nbtime 1700000000\nprocesses 10\n";
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        let p = parse(Some(stat), Some(status), Some(boot), Some(limits), Some(12));
        assert_eq!(p.cpu_seconds, Some(3.0));
        assert_eq!(p.start_time_seconds, Some(1_700_001_234.0));
        assert_eq!(p.resident_bytes, Some(20_000 * 1024));
        assert_eq!(p.virtual_bytes, Some(1_048_576_000));
        assert_eq!(p.open_fds, Some(12));
        assert_eq!(p.max_fds, Some(1024));
    }

    #[test]
    fn missing_or_garbage_texts_give_nothing() {
        assert_eq!(parse(None, None, None, None, None), Process::default());
        let p = parse(
            Some("garbage"),
            Some("VmRSS: lots"),
            Some("btime x"),
            Some(""),
            None,
        );
        assert_eq!(p, Process::default());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let mut out = String::new();
        render(&mut out);
        for name in [
            "process_cpu_seconds_total ",
            "process_start_time_seconds ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_max_fds ",
        ] {
            assert!(out.contains(name), "{name} missing from {out}");
        }
    }
}
