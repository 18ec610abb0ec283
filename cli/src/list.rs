//! `dapr-envoy list`, as `dapr list`: the apps of the runs going on on this machine, with their
//! ports, pids and age, and live request rates and error counts read from their sidecars'
//! admin interfaces.
//!
//! A run says what it is in `run.json` in its run directory ([`State`], written by the runner
//! once its sidecars are ready and again once its apps are started) and leaves a pointer to that
//! directory in a per-user registry, `$XDG_RUNTIME_DIR/dapr-envoy/runs/<runner pid>` (or
//! `/tmp/dapr-envoy-<uid>/runs/`). A run is live while its directory's lock is held; a run that
//! was killed leaves files behind, which `list` skips and removes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The state file in a run directory.
pub const STATE_FILE: &str = "run.json";

/// What a run says of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The runner's pid (Dapr's CLI PID).
    pub pid: u32,
    /// When the run started, in seconds since the Unix epoch.
    pub started: u64,
    pub run_file: String,
    pub run_dir: String,
    pub apps: Vec<AppState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppState {
    pub app_id: String,
    pub http_port: u16,
    pub inbound_port: u16,
    pub app_port: Option<u16>,
    pub metrics_port: u16,
    pub admin_port: u16,
    pub command: String,
    pub envoy_pid: Option<u32>,
    pub app_pid: Option<u32>,
    pub app_log: String,
    pub envoy_log: String,
}

/// Where runs register themselves.
pub fn registry() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("dapr-envoy").join("runs"),
        None => {
            use std::os::unix::fs::MetadataExt;
            // Our own uid: the owner of our /proc entry.
            let uid = std::fs::metadata("/proc/self").map_or(0, |m| m.uid());
            std::env::temp_dir()
                .join(format!("dapr-envoy-{uid}"))
                .join("runs")
        }
    }
}

/// Writes the run's state into its directory and registers it (both atomically: a reader never
/// sees half a file).
pub fn publish(state: &State) -> Result<(), String> {
    let dir = Path::new(&state.run_dir);
    let text = serde_json::to_string_pretty(state).map_err(|e| e.to_string())?;
    write_atomic(&dir.join(STATE_FILE), &(text + "\n"))?;
    let registry = registry();
    std::fs::create_dir_all(&registry)
        .map_err(|e| format!("cannot create {}: {e}", registry.display()))?;
    // Under a shared /tmp, only this user reads where its runs are.
    if let Some(own) = registry.parent() {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(own, std::fs::Permissions::from_mode(0o700));
    }
    write_atomic(&registry.join(state.pid.to_string()), &state.run_dir)
}

/// Removes the run's state and its registration (at the end of the run).
pub fn withdraw(run_dir: &Path, pid: u32) {
    let _ = std::fs::remove_file(run_dir.join(STATE_FILE));
    let _ = std::fs::remove_file(registry().join(pid.to_string()));
}

fn write_atomic(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The state of the run in `run_dir`, if a live run holds it.
pub fn live_state(run_dir: &Path) -> Option<State> {
    let text = std::fs::read_to_string(run_dir.join(STATE_FILE)).ok()?;
    let state: State = serde_json::from_str(&text).ok()?;
    locked(run_dir).then_some(state)
}

/// Whether another process holds the run directory's lock (a run is going on in it).
fn locked(run_dir: &Path) -> bool {
    use nix::fcntl::{Flock, FlockArg};
    let Ok(file) = std::fs::File::open(run_dir.join("lock")) else {
        return false;
    };
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(_released_on_drop) => false,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => true,
        Err(_) => false,
    }
}

/// Every live run on this machine, oldest first; registrations of dead runs are removed.
pub fn live_runs() -> Vec<State> {
    let mut runs = Vec::new();
    let Ok(entries) = std::fs::read_dir(registry()) else {
        return runs;
    };
    for entry in entries.flatten() {
        let dir = std::fs::read_to_string(entry.path()).unwrap_or_default();
        match live_state(Path::new(dir.trim())) {
            Some(state) => runs.push(state),
            None => {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    runs.sort_by_key(|s| (s.started, s.pid));
    runs
}

/// What a sidecar has counted so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Calls from the app (its outbound listener).
    pub sent: u64,
    /// Calls to the app (its inbound listener).
    pub received: u64,
    /// Answers with status 4xx or 5xx, either way.
    pub errors: u64,
}

/// The sidecar's counters, from its admin interface (`/stats?format=json`).
pub fn counts(admin_port: u16) -> Option<Counts> {
    let body = http_get(
        admin_port,
        "/stats?format=json&filter=%5Ehttp%5C.(outbound%7Cinbound)%5C.downstream_rq_(total%7C4xx%7C5xx)%24",
    )?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let mut c = Counts::default();
    for stat in v.get("stats")?.as_array()? {
        let (Some(name), Some(value)) = (
            stat.get("name").and_then(|n| n.as_str()),
            stat.get("value").and_then(|n| n.as_u64()),
        ) else {
            continue;
        };
        match name {
            "http.outbound.downstream_rq_total" => c.sent = value,
            "http.inbound.downstream_rq_total" => c.received = value,
            n if n.ends_with("_4xx") || n.ends_with("_5xx") => c.errors += value,
            _ => {}
        }
    }
    Some(c)
}

/// A GET to Envoy's admin interface on loopback.
fn http_get(port: u16, path: &str) -> Option<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return dechunk(body);
    }
    Some(body.to_string())
}

fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size..)?.strip_prefix("\r\n")?;
    }
}

/// One row of the table: an app, and what its sidecar counted.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub app_id: String,
    pub http_port: u16,
    pub app_port: Option<u16>,
    pub metrics_port: u16,
    pub command: String,
    pub age: String,
    pub created: String,
    pub envoy_pid: Option<u32>,
    pub cli_pid: u32,
    pub app_pid: Option<u32>,
    /// Calls per second from the app and to it, over the sampling interval.
    pub sent_per_second: Option<f64>,
    pub received_per_second: Option<f64>,
    /// 4xx and 5xx answers since the sidecar started.
    pub errors: Option<u64>,
    pub run_file: String,
    pub app_log: String,
    pub envoy_log: String,
}

/// The rows of `runs`, with rates measured over `interval` (zero: no rates).
pub fn rows(runs: &[State], interval: Duration, now: SystemTime) -> Vec<Row> {
    let apps: Vec<(&State, &AppState)> = runs
        .iter()
        .flat_map(|s| s.apps.iter().map(move |a| (s, a)))
        .collect();
    let before: Vec<Option<Counts>> = apps.iter().map(|(_, a)| counts(a.admin_port)).collect();
    let after: Vec<Option<Counts>> = if interval.is_zero() {
        before.clone()
    } else {
        std::thread::sleep(interval);
        apps.iter().map(|(_, a)| counts(a.admin_port)).collect()
    };
    let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let secs = interval.as_secs_f64();
    apps.iter()
        .zip(before.iter().zip(&after))
        .map(|((run, app), (b, a))| {
            let rate = |f: fn(&Counts) -> u64| match (b, a) {
                (Some(b), Some(a)) if secs > 0.0 => Some(f(a).saturating_sub(f(b)) as f64 / secs),
                _ => None,
            };
            Row {
                app_id: app.app_id.clone(),
                http_port: app.http_port,
                app_port: app.app_port,
                metrics_port: app.metrics_port,
                command: app.command.clone(),
                age: age(now_secs.saturating_sub(run.started)),
                created: created(run.started),
                envoy_pid: app.envoy_pid,
                cli_pid: run.pid,
                app_pid: app.app_pid,
                sent_per_second: rate(|c| c.sent),
                received_per_second: rate(|c| c.received),
                errors: a.map(|c| c.errors),
                run_file: run.run_file.clone(),
                app_log: app.app_log.clone(),
                envoy_log: app.envoy_log.clone(),
            }
        })
        .collect()
}

/// Dapr's age column: `12s`, `5m`, `3h`, `2d`.
pub fn age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// `2006-01-02 15:04.05` (Dapr's format), in UTC.
pub fn created(epoch: u64) -> String {
    let days = epoch / 86400;
    let rest = epoch % 86400;
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}.{:02}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The table as `dapr list` prints it: columns padded, `COMMAND` cut to 20 characters, a
/// column blank in every row left out.
pub fn table(rows: &[Row]) -> String {
    if rows.is_empty() {
        return "No Dapr instances found.\n".into();
    }
    let opt = |v: Option<u16>| v.map(|p| p.to_string()).unwrap_or_default();
    let pid = |v: Option<u32>| v.map(|p| p.to_string()).unwrap_or_default();
    let rate = |v: Option<f64>| v.map(|r| format!("{r:.1}")).unwrap_or_default();
    let headers = [
        "APP ID",
        "HTTP PORT",
        "APP PORT",
        "METRICS PORT",
        "COMMAND",
        "AGE",
        "CREATED",
        "ENVOY PID",
        "CLI PID",
        "APP PID",
        "REQ/S OUT",
        "REQ/S IN",
        "ERRORS",
        "RUN_TEMPLATE_PATH",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.app_id.clone(),
                r.http_port.to_string(),
                opt(r.app_port),
                r.metrics_port.to_string(),
                r.command.chars().take(20).collect(),
                r.age.clone(),
                r.created.clone(),
                pid(r.envoy_pid),
                r.cli_pid.to_string(),
                pid(r.app_pid),
                rate(r.sent_per_second),
                rate(r.received_per_second),
                r.errors.map(|e| e.to_string()).unwrap_or_default(),
                r.run_file.clone(),
            ]
        })
        .collect();
    let shown: Vec<usize> = (0..headers.len())
        .filter(|&i| {
            cells
                .iter()
                .any(|row| row.get(i).is_some_and(|c| !c.is_empty()))
        })
        .collect();
    let width = |i: usize| {
        cells
            .iter()
            .filter_map(|row| row.get(i))
            .map(|c| c.chars().count())
            .chain(headers.get(i).map(|h| h.len()))
            .max()
            .unwrap_or(0)
    };
    let line = |values: Vec<&str>| {
        let padded: Vec<String> = shown
            .iter()
            .zip(values)
            .map(|(&i, v)| format!("{v:<w$}", w = width(i)))
            .collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(
        shown
            .iter()
            .filter_map(|&i| headers.get(i).copied())
            .collect(),
    );
    for row in &cells {
        out.push_str(&line(
            shown
                .iter()
                .filter_map(|&i| row.get(i).map(String::as_str))
                .collect(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_ages_read_as_daprs() {
        assert_eq!(created(0), "1970-01-01 00:00.00");
        assert_eq!(created(1_795_660_244), "2026-11-26 02:30.44");
        assert_eq!(created(951_782_400), "2000-02-29 00:00.00");
        assert_eq!(
            [age(5), age(61), age(7200), age(200_000)],
            ["5s", "1m", "2h", "2d"]
        );
    }

    #[test]
    fn the_table_leaves_out_blank_columns_and_cuts_the_command() {
        let row = Row {
            app_id: "checkout".into(),
            http_port: 3500,
            app_port: None,
            metrics_port: 9090,
            command: "python3 app.py --with many arguments".into(),
            age: "5s".into(),
            created: "2026-11-26 02:30.44".into(),
            envoy_pid: Some(10),
            cli_pid: 9,
            app_pid: Some(11),
            sent_per_second: Some(2.0),
            received_per_second: Some(0.0),
            errors: Some(1),
            run_file: "/r/dapr.yaml".into(),
            app_log: String::new(),
            envoy_log: String::new(),
        };
        let t = table(&[row]);
        let mut lines = t.lines();
        let head = lines.next().unwrap();
        assert!(
            head.starts_with("APP ID    HTTP PORT  METRICS PORT  COMMAND"),
            "{t}"
        );
        assert!(!head.contains("APP PORT "), "blank in every row: {t}");
        let line = lines.next().unwrap();
        assert!(line.contains("python3 app.py --wit "), "{t}");
        assert!(
            line.contains("2.0") && line.ends_with("/r/dapr.yaml"),
            "{t}"
        );
        assert_eq!(table(&[]), "No Dapr instances found.\n");
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").as_deref(),
            Some("abcde")
        );
        assert_eq!(dechunk("zz\r\n"), None);
    }
}
