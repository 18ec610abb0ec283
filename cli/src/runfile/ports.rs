//! Port resolution: the ports a run file sets must not clash and must be free; the ones it leaves
//! open are chosen (Dapr HTTP ports from 3500 upward, the rest from the OS).

use super::{AppPlan, RunFileError};

/// The first Dapr HTTP port handed out when an app does not set `daprHTTPPort`, as `dapr run`
/// users know it.
pub const FIRST_HTTP_PORT: u16 = 3500;

/// What resolution needs from the machine: whether a port is free, and a free ephemeral port.
pub trait Ports {
    fn is_free(&mut self, port: u16) -> bool;
    fn ephemeral(&mut self) -> Option<u16>;
}

/// The real machine: a port is free if we can bind it on loopback.
pub struct LocalPorts;

impl Ports for LocalPorts {
    fn is_free(&mut self, port: u16) -> bool {
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
    }
    fn ephemeral(&mut self) -> Option<u16> {
        let l = std::net::TcpListener::bind(("127.0.0.1", 0)).ok()?;
        l.local_addr().ok().map(|a| a.port())
    }
}

/// Ports for files that are written, not run: every port counts as free and the ones a run file
/// leaves open are numbered from 50001, so the same run file always gives the same configs.
#[derive(Debug)]
pub struct Sequential(u16);

impl Default for Sequential {
    fn default() -> Self {
        Sequential(50001)
    }
}

impl Ports for Sequential {
    fn is_free(&mut self, _port: u16) -> bool {
        true
    }
    fn ephemeral(&mut self) -> Option<u16> {
        let p = self.0;
        self.0 = self.0.checked_add(1)?;
        Some(p)
    }
}

/// A port the run file sets: its key, and the line it is on.
#[derive(Debug, Clone, Copy)]
pub struct Explicit {
    pub key: &'static str,
    pub port: u16,
    pub line: Option<usize>,
}

/// Checks the explicit ports of `apps` (`explicit[i]` belongs to `apps[i]`), then fills in
/// `http_port`, `inbound_port`, `metrics_port`, `admin_port` and `grpc_port`.
pub fn resolve(
    file: &str,
    apps: &mut [AppPlan],
    explicit: &[Vec<Explicit>],
    ports: &mut dyn Ports,
) -> Result<(), RunFileError> {
    let err = |line, key: &str, message: String| RunFileError::new(file, line, key, message);

    // Explicit ports: no clash within the file, and free on this machine.
    let mut claimed: Vec<(u16, String, Option<usize>)> = Vec::new();
    for (i, set) in explicit.iter().enumerate() {
        for e in set {
            let here = format!("apps[{i}].{}", e.key);
            if let Some((_, other, other_line)) = claimed.iter().find(|(q, _, _)| *q == e.port) {
                return Err(err(
                    e.line,
                    &here,
                    format!(
                        "port {} is also {other}{}",
                        e.port,
                        other_line
                            .map(|l| format!(" (line {l})"))
                            .unwrap_or_default()
                    ),
                ));
            }
            if !ports.is_free(e.port) {
                return Err(err(
                    e.line,
                    &here,
                    format!("port {} is already in use on this machine", e.port),
                ));
            }
            claimed.push((e.port, here, e.line));
        }
    }

    let mut taken: Vec<u16> = claimed.iter().map(|(p, _, _)| *p).collect();
    let mut next_http = FIRST_HTTP_PORT;
    for (i, app) in apps.iter_mut().enumerate() {
        app.http_port = match app.requested.http {
            Some(p) => p,
            None => {
                let mut found = None;
                while next_http < u16::MAX {
                    let p = next_http;
                    next_http += 1;
                    if !taken.contains(&p) && ports.is_free(p) {
                        found = Some(p);
                        break;
                    }
                }
                let p = found.ok_or_else(|| {
                    err(
                        None,
                        &format!("apps[{i}].daprHTTPPort"),
                        format!("no free port from {FIRST_HTTP_PORT} up"),
                    )
                })?;
                taken.push(p);
                p
            }
        };
        for (slot, given, key) in [
            (
                &mut app.inbound_port,
                app.requested.inbound,
                "daprInternalGRPCPort",
            ),
            (&mut app.metrics_port, app.requested.metrics, "metricsPort"),
            (&mut app.admin_port, None, "metricsPort"),
            (&mut app.grpc_port, app.requested.grpc, "daprGRPCPort"),
        ] {
            *slot = match given {
                Some(p) => p,
                None => {
                    let found = (0..100)
                        .map_while(|_| ports.ephemeral())
                        .find(|p| !taken.contains(p));
                    let p = found.ok_or_else(|| {
                        err(None, &format!("apps[{i}].{key}"), "no free port".into())
                    })?;
                    taken.push(p);
                    p
                }
            };
        }
    }
    Ok(())
}
