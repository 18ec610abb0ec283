//! Running a plan: one Envoy per app, then the apps, their output prefixed as `dapr run -f`
//! prints it, and everything stopped together.
//!
//! Every child starts in a process group of its own, so stopping it stops what it started too:
//! SIGTERM to the group, a grace period, then SIGKILL to the group. The run ends (and stops all)
//! on Ctrl-C, SIGTERM or SIGHUP, when an app fails, when the `--exit-with` app exits, or when
//! every app has exited.
//!
//! A sidecar that dies after it was ready is started again with the same config, after 0.1 s,
//! then twice as long at each restart in a row (at most 5 s), as an orchestrator restarts a
//! crashed sidecar container; its app keeps running, and its callers get Dapr's errors
//! (connection refused, 503) meanwhile. A restart counts as "in a row" unless the sidecar before
//! it had stayed up RESTART_STABLE. The run ends when a sidecar exits before it was first ready
//! (a bad config, a port taken: starting it again would not help), or after
//! `Options::sidecar_restarts` restarts in a row.
//!
//! A runner killed with SIGKILL cannot stop anything, so a guard does it: a small process (this
//! binary again, `dapr-envoy guard`) in a process group of its own that ignores SIGINT, SIGTERM
//! and SIGHUP. The runner tells it every process group it starts, over a pipe. When the pipe
//! ends without the runner's `done` (the runner is gone, however it died), the guard stops every
//! group it was told about the way the runner would have, then exits. The kernel's parent-death
//! signal (`PR_SET_PDEATHSIG`) was the other candidate; it needs `pre_exec` (unsafe code), is
//! Linux only, fires when the spawning *thread* exits, and reaches only the direct child, not
//! what an app started (`sh -c "worker &"`); a process group reaches them all.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::runfile::{AppPlan, LogDest, Plan};
use crate::{certs, envoy};

const TICK: Duration = Duration::from_millis(50);
const GRACE: Duration = Duration::from_secs(5);
const ENVOY_READY: Duration = Duration::from_secs(60);
/// The default of `--sidecar-restarts`: restarts in a row before a dying sidecar ends the run.
pub const SIDECAR_RESTARTS: u32 = 5;
/// The wait before the first restart in a row; each next one waits twice as long.
const RESTART_FIRST: Duration = Duration::from_millis(100);
const RESTART_MAX: Duration = Duration::from_secs(5);
/// A sidecar that stayed up this long has recovered: its next death is a first restart again.
const RESTART_STABLE: Duration = Duration::from_secs(30);
/// How long the output of stopped processes may take to reach the console and the logs. Only
/// a process that left its group (and holds the pipe) makes the copying outlast this.
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

/// The hidden subcommand that runs the guard.
pub const GUARD_COMMAND: &str = "guard";
/// What the runner tells the guard once it has stopped everything itself.
const GUARD_DONE: &str = "done";

pub struct Options {
    pub envoy: PathBuf,
    pub wasm: PathBuf,
    pub run_dir: PathBuf,
    /// The run file, as `dapr-envoy list` shows it.
    pub run_file: PathBuf,
    /// Stop everything once this app exits, with its exit code.
    pub exit_with: Option<String>,
    /// How long to wait for an app's port before starting the apps without one.
    pub app_port_timeout: Duration,
    /// Restarts in a row of a sidecar that dies, before the run ends (0: never restart).
    pub sidecar_restarts: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Envoy,
    App,
}

struct Proc {
    kind: Kind,
    app: usize,
    child: Child,
    done: Option<ExitStatus>,
    /// When this child was spawned.
    started: Instant,
    /// A sidecar: it has been ready once (only such a sidecar is restarted when it dies).
    ready_once: bool,
    /// A restarted sidecar that has not said it is ready yet.
    awaiting_ready: bool,
    restarts: Restarts,
    /// A dead sidecar's restart, due at this time.
    restart_at: Option<Instant>,
}

impl Proc {
    fn new(kind: Kind, app: usize, child: Child) -> Proc {
        Proc {
            kind,
            app,
            child,
            done: None,
            started: Instant::now(),
            ready_once: false,
            awaiting_ready: false,
            restarts: Restarts::default(),
            restart_at: None,
        }
    }
}

/// The restarts of one sidecar: how many in a row, and what to do when it dies again.
#[derive(Debug, Default)]
struct Restarts {
    in_a_row: u32,
}

#[derive(Debug, PartialEq, Eq)]
enum Restart {
    /// Start it again after `delay`; this is restart number `attempt` in a row.
    After { delay: Duration, attempt: u32 },
    /// Do not: it was restarted `after` times in a row already (the most allowed).
    GiveUp { after: u32 },
}

impl Restarts {
    /// The sidecar died after running for `lived`; at most `max` restarts in a row.
    fn on_exit(&mut self, lived: Duration, max: u32) -> Restart {
        if lived >= RESTART_STABLE {
            self.in_a_row = 0;
        }
        if self.in_a_row >= max {
            return Restart::GiveUp {
                after: self.in_a_row,
            };
        }
        let delay = RESTART_FIRST
            .saturating_mul(1u32 << self.in_a_row.min(16))
            .min(RESTART_MAX);
        self.in_a_row += 1;
        Restart::After {
            delay,
            attempt: self.in_a_row,
        }
    }
}

/// Why the run ended.
enum End {
    Signal(i32),
    Failed(String),
    Finished(i32),
}

struct Runner<'a> {
    plan: &'a Plan,
    opts: &'a Options,
    /// When the run started, in seconds since the epoch (for `dapr-envoy list`).
    started: u64,
    procs: Vec<Proc>,
    signals: Receiver<i32>,
    out: Arc<Mutex<std::io::Stdout>>,
    /// The threads copying the children's output.
    pumps: Vec<JoinHandle<()>>,
    guard: Option<Guard>,
    /// Each app's sidecar config, in plan order.
    configs: Vec<PathBuf>,
    logs: PathBuf,
}

/// Makes the mesh's CA and one certificate per app in `dir/certs`, then writes the sidecar
/// configs of every app into `dir`; returns their paths in plan order.
pub fn write_configs(plan: &Plan, wasm: &Path, dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let layout = envoy::layout::Local {
        wasm: wasm.to_path_buf(),
        certs: Some(dir.join("certs")),
    };
    certs::write_for(plan, &layout, false)?;
    plan.apps
        .iter()
        .map(|app| {
            let cfg = envoy::sidecar(plan, app, &layout)?;
            let path = dir.join(format!("{}.envoy.json", app.app_id));
            let text = serde_json::to_string_pretty(&cfg).map_err(|e| e.to_string())?;
            std::fs::write(&path, text + "\n")
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(path)
        })
        .collect()
}

/// Runs the plan to its end; returns the process exit code.
pub fn run(plan: &Plan, opts: &Options) -> Result<i32, String> {
    let (tx, signals) = mpsc::channel();
    let mut handler =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(|e| format!("signal handler: {e}"))?;
    thread::spawn(move || {
        for sig in handler.forever() {
            if tx.send(sig).is_err() {
                break;
            }
        }
    });

    let logs = opts.run_dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
    let configs = write_configs(plan, &opts.wasm, &opts.run_dir)?;

    say(&format!(
        "starting {} with {} app(s); configs and logs in {}",
        plan.name
            .as_deref()
            .map_or("the run".to_string(), |n| format!("run {n:?}")),
        plan.apps.len(),
        opts.run_dir.display()
    ));
    let guard = match Guard::start() {
        Ok(guard) => Some(guard),
        Err(e) => {
            say(&format!(
                "warning: {e}: if dapr-envoy is killed with SIGKILL, its apps and sidecars will \
                 outlive it"
            ));
            None
        }
    };
    let mut runner = Runner {
        plan,
        opts,
        started: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        procs: Vec::new(),
        signals,
        out: Arc::new(Mutex::new(std::io::stdout())),
        pumps: Vec::new(),
        guard,
        configs,
        logs,
    };
    let end = runner.start_and_watch();
    crate::list::withdraw(&opts.run_dir, std::process::id());
    runner.stop_all();
    if let Some(guard) = runner.guard.take() {
        guard.release();
    }
    runner.finish_output();
    Ok(match end {
        End::Signal(sig) => {
            say(&format!(
                "received signal {sig}; stopped every app and sidecar"
            ));
            128 + sig
        }
        End::Failed(why) => {
            say(&format!("{why}; stopped every app and sidecar"));
            1
        }
        End::Finished(code) => {
            say("stopped every app and sidecar");
            code
        }
    })
}

/// A message of the runner, on stderr. A write error is dropped: with `dapr-envoy run | head`,
/// stderr can be a pipe nobody reads any more, and the run must still go on and stop cleanly
/// (`eprintln!` would panic there, ending the runner with its apps and sidecars left running).
pub fn say(msg: &str) {
    let _ = writeln!(std::io::stderr(), "dapr-envoy: {msg}");
}

/// The lock on a run directory, held for the whole run; the kernel releases it when the
/// process ends, however it ends.
pub type RunDirLock = Flock<File>;

/// Takes the run directory for this run: a second run on the same directory would rewrite the
/// first one's CA, keys, configs and logs under it. The lock is an OS file lock on `DIR/lock`,
/// which holds the pid of the run that has it. `Ok(None)`: the file system cannot lock (the
/// run goes on, unguarded, with a warning).
pub fn lock_run_dir(dir: &Path) -> Result<Option<RunDirLock>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false) // not before the lock: it holds the other run's pid
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            let _ = lock
                .set_len(0)
                .and_then(|()| writeln!(lock, "{}", std::process::id()));
            Ok(Some(lock))
        }
        Err((mut file, Errno::EWOULDBLOCK)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let who = match pid.trim().parse::<u32>() {
                Ok(pid) => format!("pid {pid}"),
                Err(_) => "pid not known yet".to_string(),
            };
            Err(format!(
                "{} is in use by another dapr-envoy run ({who}); stop that run, or give this \
                 one another --run-dir",
                dir.display()
            ))
        }
        Err((_, e)) => {
            say(&format!(
                "warning: cannot lock {}: {e}; nothing stops a second run from using {} too",
                path.display(),
                dir.display()
            ));
            Ok(None)
        }
    }
}

impl Runner<'_> {
    fn start_and_watch(&mut self) -> End {
        let logs = self.logs.clone();
        let logs = logs.as_path();
        for i in 0..self.plan.apps.len() {
            if let Err(why) = self.start_envoy(i) {
                return End::Failed(why);
            }
        }
        for (i, app) in self.plan.apps.iter().enumerate() {
            if let Some(end) = self.wait_until(|_| envoy_ready(app.admin_port), ENVOY_READY) {
                return end.unwrap_or_else(|| {
                    End::Failed(format!(
                        "the sidecar of {:?} did not become ready in {}s (log: {})",
                        app.app_id,
                        ENVOY_READY.as_secs(),
                        envoy_log(logs, app).display()
                    ))
                });
            }
            say(&format!(
                "sidecar of {:?} ready: DAPR_HTTP_PORT {}, DAPR_GRPC_PORT {}, inbound {}, metrics {}, \
                 admin {} (log: {})",
                app.app_id,
                app.http_port,
                app.grpc_port,
                app.inbound_port,
                app.metrics_port,
                app.admin_port,
                envoy_log(logs, app).display()
            ));
            if let Some(p) = self
                .procs
                .iter_mut()
                .find(|p| p.kind == Kind::Envoy && p.app == i)
            {
                p.ready_once = true;
            }
        }

        self.publish();

        // Apps that receive calls first, and their ports open, before the callers start.
        let (servers, clients): (Vec<usize>, Vec<usize>) = (0..self.plan.apps.len())
            .partition(|i| self.plan.apps.get(*i).is_some_and(|a| a.app_port.is_some()));
        for &i in &servers {
            if let Err(why) = self.start_app(i, logs) {
                return End::Failed(why);
            }
        }
        for &i in &servers {
            let Some(app) = self.plan.apps.get(i) else {
                continue;
            };
            let Some(port) = app.app_port else { continue };
            // An app that exits without opening its port will not open it: stop waiting.
            let mut exited = None;
            let open_or_exited = |r: &Self| {
                port_open(port) || {
                    exited = r.app_status(i);
                    exited.is_some()
                }
            };
            match self.wait_until(open_or_exited, self.opts.app_port_timeout) {
                None => {
                    if let Some(status) = exited {
                        say(&format!(
                            "app {:?} exited ({}) before opening its port {port}; starting the \
                             others",
                            app.app_id,
                            describe(status)
                        ));
                    }
                }
                Some(Some(end)) => return end,
                Some(None) => say(&format!(
                    "app {:?} has not opened port {port} after {}s; starting the others anyway",
                    app.app_id,
                    self.opts.app_port_timeout.as_secs()
                )),
            }
        }
        for &i in &clients {
            if let Err(why) = self.start_app(i, logs) {
                return End::Failed(why);
            }
        }
        self.publish();
        match self.wait_until(|_| false, Duration::MAX) {
            Some(Some(end)) => end,
            _ => End::Failed("supervision ended unexpectedly".into()),
        }
    }

    /// Tells `dapr-envoy list` about the run: its apps, ports, pids and logs.
    fn publish(&self) {
        let logs = self.logs.as_path();
        let pid_of = |kind: Kind, i: usize| {
            self.procs
                .iter()
                .find(|p| p.kind == kind && p.app == i)
                .map(|p| p.child.id())
        };
        let state = crate::list::State {
            pid: std::process::id(),
            started: self.started,
            run_file: self.opts.run_file.display().to_string(),
            run_dir: self.opts.run_dir.display().to_string(),
            apps: self
                .plan
                .apps
                .iter()
                .enumerate()
                .map(|(i, app)| crate::list::AppState {
                    app_id: app.app_id.clone(),
                    http_port: app.http_port,
                    inbound_port: app.inbound_port,
                    app_port: app.app_port,
                    metrics_port: app.metrics_port,
                    admin_port: app.admin_port,
                    command: app.command.join(" "),
                    envoy_pid: pid_of(Kind::Envoy, i),
                    app_pid: pid_of(Kind::App, i),
                    app_log: logs
                        .join(format!("{}.app.log", app.app_id))
                        .display()
                        .to_string(),
                    envoy_log: envoy_log(logs, app).display().to_string(),
                })
                .collect(),
        };
        if let Err(e) = crate::list::publish(&state) {
            say(&format!(
                "warning: dapr-envoy list will not show this run: {e}"
            ));
        }
    }

    /// Polls `ready` until it is true (None), the run ends (Some(Some(end))) or `timeout`
    /// passes (Some(None)).
    fn wait_until(
        &mut self,
        mut ready: impl FnMut(&Self) -> bool,
        timeout: Duration,
    ) -> Option<Option<End>> {
        let start = Instant::now();
        loop {
            if let Some(end) = self.check() {
                return Some(Some(end));
            }
            if ready(self) {
                return None;
            }
            if start.elapsed() >= timeout {
                return Some(None);
            }
            match self.signals.recv_timeout(TICK) {
                Ok(sig) => return Some(Some(End::Signal(sig))),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => thread::sleep(TICK),
            }
        }
    }

    /// How app `i` exited, once it has (as seen by the last `check`).
    fn app_status(&self, i: usize) -> Option<ExitStatus> {
        self.procs
            .iter()
            .find(|p| p.kind == Kind::App && p.app == i)
            .and_then(|p| p.done)
    }

    /// Looks at exited children, restarts dead sidecars when their time has come, and decides
    /// whether the run ends.
    fn check(&mut self) -> Option<End> {
        let mut end = None;
        let max_restarts = self.opts.sidecar_restarts;
        for p in self.procs.iter_mut().filter(|p| p.done.is_none()) {
            let Ok(Some(status)) = p.child.try_wait() else {
                continue;
            };
            p.done = Some(status);
            let id = self.plan.apps.get(p.app).map_or("?", |a| a.app_id.as_str());
            match p.kind {
                Kind::Envoy if !p.ready_once => {
                    end.get_or_insert(End::Failed(format!(
                        "the sidecar (Envoy) of {id:?} exited ({})",
                        describe(status)
                    )));
                }
                Kind::Envoy => match p.restarts.on_exit(p.started.elapsed(), max_restarts) {
                    Restart::After { delay, attempt } => {
                        say(&format!(
                            "the sidecar (Envoy) of {id:?} exited ({}); starting it again in \
                             {:.1} s (restart {attempt} in a row, at most {max_restarts})",
                            describe(status),
                            delay.as_secs_f64()
                        ));
                        p.restart_at = Some(Instant::now() + delay);
                    }
                    Restart::GiveUp { after } => {
                        let restarts = match after {
                            0 => String::new(),
                            n => format!(" after {n} restart(s) in a row"),
                        };
                        end.get_or_insert(End::Failed(format!(
                            "the sidecar (Envoy) of {id:?} exited ({}){restarts}",
                            describe(status)
                        )));
                    }
                },
                Kind::App if !status.success() => {
                    end.get_or_insert(End::Failed(format!(
                        "app {id:?} failed ({})",
                        describe(status)
                    )));
                }
                Kind::App => {
                    say(&format!("app {id:?} exited ({})", describe(status)));
                    if self.opts.exit_with.as_deref() == Some(id) {
                        end.get_or_insert(End::Finished(0));
                    }
                }
            }
        }
        if end.is_none() {
            end = self.restart_sidecars();
        }
        if end.is_none() {
            let apps_started = self.procs.iter().filter(|p| p.kind == Kind::App).count();
            let apps_running = self
                .procs
                .iter()
                .filter(|p| p.kind == Kind::App && p.done.is_none())
                .count();
            if apps_started == self.plan.apps.len() && apps_running == 0 {
                end = Some(End::Finished(0));
            }
        }
        end
    }

    /// Starts the dead sidecars whose restart is due, and says when a restarted one is ready.
    fn restart_sidecars(&mut self) -> Option<End> {
        let now = Instant::now();
        let mut restarted = false;
        for k in 0..self.procs.len() {
            let Some(p) = self.procs.get(k) else { continue };
            let (i, due) = (p.app, p.restart_at.is_some_and(|t| t <= now));
            let Some(app) = self.plan.apps.get(i) else {
                continue;
            };
            if due {
                let child = match self.spawn_envoy(i, true) {
                    Ok(child) => child,
                    Err(why) => return Some(End::Failed(why)),
                };
                say(&format!(
                    "started the sidecar of {:?} again (pid {})",
                    app.app_id,
                    child.id()
                ));
                if let Some(p) = self.procs.get_mut(k) {
                    p.child = child;
                    p.done = None;
                    p.started = Instant::now();
                    p.restart_at = None;
                    p.awaiting_ready = true;
                }
                restarted = true;
            } else if p.awaiting_ready && p.done.is_none() && envoy_ready(app.admin_port) {
                say(&format!(
                    "sidecar of {:?} ready again after {:.1} s",
                    app.app_id,
                    p.started.elapsed().as_secs_f64()
                ));
                if let Some(p) = self.procs.get_mut(k) {
                    p.awaiting_ready = false;
                }
            }
        }
        if restarted {
            // dapr-envoy list shows the new sidecar's pid.
            self.publish();
        }
        None
    }

    fn start_envoy(&mut self, i: usize) -> Result<(), String> {
        let child = self.spawn_envoy(i, false)?;
        self.procs.push(Proc::new(Kind::Envoy, i, child));
        Ok(())
    }

    /// Spawns app `i`'s sidecar; `again`: a restart, whose output goes on in the same log.
    fn spawn_envoy(&mut self, i: usize, again: bool) -> Result<Child, String> {
        let (Some(app), Some(cfg)) = (self.plan.apps.get(i), self.configs.get(i)) else {
            return Err(format!("no app {i} in the plan"));
        };
        let mut cmd = Command::new(&self.opts.envoy);
        cmd.arg("-c")
            .arg(cfg)
            .args([
                "--disable-hot-restart",
                "--concurrency",
                "1",
                "--log-level",
                app.envoy_log_level,
            ])
            // The tokens the config names by variable, never by value.
            .envs(envoy::sidecar_env(app))
            .current_dir(&self.plan.base_dir);
        let prefix = format!("== ENVOY - {} == ", app.app_id);
        let log = envoy_log(&self.logs, app);
        let (dest, envoy, app_id) = (app.envoy_log, self.opts.envoy.clone(), app.app_id.clone());
        self.spawn(cmd, &prefix, dest, &log, again).map_err(|e| {
            format!(
                "cannot start Envoy ({}) for {app_id:?}: {e}",
                envoy.display()
            )
        })
    }

    fn start_app(&mut self, i: usize, logs: &Path) -> Result<(), String> {
        let Some(app) = self.plan.apps.get(i) else {
            return Ok(());
        };
        let Some((program, args)) = app.command.split_first() else {
            return Err(format!("app {:?} has no command", app.app_id));
        };
        let mut cmd = Command::new(program);
        cmd.args(args).current_dir(&app.dir).envs(app.app_env());
        let prefix = if self.plan.apps.len() > 1 {
            format!("== APP - {} == ", app.app_id)
        } else {
            "== APP == ".to_string()
        };
        let log = logs.join(format!("{}.app.log", app.app_id));
        let child = self
            .spawn(cmd, &prefix, app.app_log, &log, false)
            .map_err(|e| {
                format!(
                    "cannot start app {:?} ({:?} in {}): {e}",
                    app.app_id,
                    program,
                    app.dir.display()
                )
            })?;
        say(&format!(
            "started app {:?} (pid {}): {}",
            app.app_id,
            child.id(),
            app.command.join(" ")
        ));
        self.procs.push(Proc::new(Kind::App, i, child));
        Ok(())
    }

    /// Spawns a child in a group of its own, its output copied to the console and/or `log`
    /// (appended to when `append`, else made anew).
    fn spawn(
        &mut self,
        mut cmd: Command,
        prefix: &str,
        dest: LogDest,
        log: &Path,
        append: bool,
    ) -> std::io::Result<Child> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn()?;
        if let Some(guard) = &mut self.guard {
            guard.watch(child.id());
        }
        let file = if dest.file() {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .append(append)
                .truncate(!append)
                .open(log)?;
            Some(Arc::new(Mutex::new(file)))
        } else {
            None
        };
        let console = dest.console().then(|| Arc::clone(&self.out));
        if let Some(s) = child.stdout.take() {
            let t = pump(s, prefix.to_string(), console.clone(), file.clone());
            self.pumps.push(t);
        }
        if let Some(s) = child.stderr.take() {
            let t = pump(s, prefix.to_string(), console, file);
            self.pumps.push(t);
        }
        Ok(child)
    }

    /// Waits (at most OUTPUT_DRAIN) for the last lines of the stopped processes to be copied:
    /// when an app exits, its pipes can still hold 64 KiB each that exit would lose.
    fn finish_output(&mut self) {
        let start = Instant::now();
        while self.pumps.iter().any(|t| !t.is_finished()) && start.elapsed() < OUTPUT_DRAIN {
            thread::sleep(Duration::from_millis(10));
        }
        for t in self.pumps.drain(..).filter(|t| t.is_finished()) {
            let _ = t.join();
        }
        if let Ok(mut out) = self.out.lock() {
            let _ = out.flush();
        }
    }

    /// SIGTERM to every group, a grace period, then SIGKILL to every group (which also reaches
    /// children that outlived their parent).
    fn stop_all(&mut self) {
        let groups: Vec<Pid> = self
            .procs
            .iter()
            .filter_map(|p| i32::try_from(p.child.id()).ok().map(Pid::from_raw))
            .collect();
        // Apps first, then their sidecars.
        for p in self.procs.iter().rev() {
            if p.done.is_none() {
                if let Ok(pid) = i32::try_from(p.child.id()) {
                    let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
                }
            }
        }
        let start = Instant::now();
        while start.elapsed() < GRACE {
            let mut running = 0;
            for p in self.procs.iter_mut().filter(|p| p.done.is_none()) {
                match p.child.try_wait() {
                    Ok(Some(status)) => p.done = Some(status),
                    _ => running += 1,
                }
            }
            if running == 0 {
                break;
            }
            thread::sleep(TICK);
        }
        for pgid in groups {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        for p in self.procs.iter_mut().filter(|p| p.done.is_none()) {
            if let Ok(status) = p.child.wait() {
                p.done = Some(status);
            }
        }
    }
}

/// The runner's side of the guard (see the module docs).
struct Guard {
    child: Child,
    /// The pipe to the guard; `None` once the guard is gone.
    tell: Option<ChildStdin>,
}

impl Guard {
    fn start() -> Result<Guard, String> {
        let exe =
            std::env::current_exe().map_err(|e| format!("cannot start the guard process: {e}"))?;
        let mut child = Command::new(&exe)
            .arg(GUARD_COMMAND)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start the guard process ({}): {e}", exe.display()))?;
        let tell = child.stdin.take();
        Ok(Guard { child, tell })
    }

    /// Tells the guard about one more process group.
    fn watch(&mut self, pgid: u32) {
        let Some(pipe) = &mut self.tell else { return };
        // One write per line: a runner killed half-way still leaves a whole number to read.
        if pipe.write_all(format!("{pgid}\n").as_bytes()).is_err() {
            say(
                "warning: the guard process is gone: if dapr-envoy is killed with SIGKILL, its \
                 apps and sidecars will outlive it",
            );
            self.tell = None;
        }
    }

    /// The run has stopped every group itself: the guard leaves without signalling any.
    fn release(mut self) {
        if let Some(mut pipe) = self.tell.take() {
            let _ = pipe.write_all(format!("{GUARD_DONE}\n").as_bytes());
        }
        let start = Instant::now();
        while start.elapsed() < GRACE {
            match self.child.try_wait() {
                Ok(None) => thread::sleep(TICK),
                _ => return,
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `dapr-envoy guard`: started by `run`, never by hand. Returns once the runner is gone.
pub fn guard_main() -> i32 {
    // Ctrl-C in a terminal, a SIGTERM to every process of a service, a hang-up: the runner
    // handles these and then releases the guard; the guard must outlive the runner to be of use.
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        let _ = signal_hook::flag::register(sig, Arc::new(AtomicBool::new(false)));
    }
    let stopped = guard(std::io::stdin().lock(), GRACE);
    if stopped > 0 {
        say(&format!(
            "the runner is gone; stopped the {stopped} process group(s) it had started"
        ));
    }
    0
}

/// Reads process-group ids, one a line, until `done` (the runner stopped them itself) or the
/// end of the input (the runner is gone, however it died); then stops every group it read, as
/// the runner would have. Returns how many groups it had to stop.
fn guard(input: impl BufRead, grace: Duration) -> usize {
    let mut groups = Vec::new();
    for line in input.lines() {
        let Ok(line) = line else { break };
        if line == GUARD_DONE {
            return 0;
        }
        groups.extend(process_group(&line));
    }
    // Apps first, then their sidecars: the reverse of the start order.
    for g in groups.iter().rev() {
        let _ = killpg(*g, Signal::SIGTERM);
    }
    let start = Instant::now();
    while start.elapsed() < grace && groups.iter().any(|g| killpg(*g, None).is_ok()) {
        thread::sleep(TICK);
    }
    for g in &groups {
        let _ = killpg(*g, Signal::SIGKILL);
    }
    groups.len()
}

/// A process-group id the runner sent. 0 and 1 are refused: `killpg(0)` is the guard's own
/// group and `killpg(1)` is every process it may signal.
fn process_group(line: &str) -> Option<Pid> {
    line.trim()
        .parse::<i32>()
        .ok()
        .filter(|id| *id > 1)
        .map(Pid::from_raw)
}

fn envoy_log(logs: &Path, app: &AppPlan) -> PathBuf {
    logs.join(format!("{}.envoy.log", app.app_id))
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "unknown status".into(),
    }
}

/// Copies a child's output line by line, prefixed, to the console and/or a log file, until
/// the end of the stream. Write errors are dropped: a closed console must not stop the copying
/// (the child would block on a full pipe), nor the log.
fn pump(
    stream: impl Read + Send + 'static,
    prefix: String,
    console: Option<Arc<Mutex<std::io::Stdout>>>,
    file: Option<Arc<Mutex<File>>>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&buf);
            let line = line.trim_end_matches(['\n', '\r']);
            if let Some(out) = &console {
                if let Ok(mut out) = out.lock() {
                    let _ = writeln!(out, "{prefix}{line}");
                    let _ = out.flush();
                }
            }
            if let Some(f) = &file {
                if let Ok(mut f) = f.lock() {
                    let _ = writeln!(f, "{line}");
                }
            }
        }
    })
}

fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Envoy's admin `/ready` answers 200 once its listeners are up.
fn envoy_ready(admin_port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], admin_port)),
        Duration::from_millis(200),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET /ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn a_run_directory_is_taken_by_one_run_at_a_time() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let first = lock_run_dir(&dir).unwrap().expect("the file system locks");
        // flock locks belong to the open file, so a second open in this process is refused too.
        let err = lock_run_dir(&dir).unwrap_err();
        assert_eq!(
            err,
            format!(
                "{} is in use by another dapr-envoy run (pid {}); stop that run, or give this \
                 one another --run-dir",
                dir.display(),
                std::process::id()
            )
        );
        drop(first);
        assert!(lock_run_dir(&dir).unwrap().is_some());
    }

    fn delays(restarts: &mut Restarts, lived: Duration, max: u32, n: usize) -> Vec<Restart> {
        (0..n).map(|_| restarts.on_exit(lived, max)).collect()
    }

    fn after(ms: u64, attempt: u32) -> Restart {
        Restart::After {
            delay: Duration::from_millis(ms),
            attempt,
        }
    }

    #[test]
    fn a_dying_sidecar_is_restarted_with_a_doubling_wait_then_given_up_on() {
        let mut r = Restarts::default();
        assert_eq!(
            delays(&mut r, Duration::from_millis(300), SIDECAR_RESTARTS, 6),
            [
                after(100, 1),
                after(200, 2),
                after(400, 3),
                after(800, 4),
                after(1600, 5),
                Restart::GiveUp { after: 5 },
            ]
        );
        // Given up stays given up.
        assert_eq!(r.on_exit(Duration::ZERO, 5), Restart::GiveUp { after: 5 });
    }

    #[test]
    fn the_wait_between_restarts_stops_growing_at_five_seconds() {
        let mut r = Restarts::default();
        let got = delays(&mut r, Duration::ZERO, 40, 40);
        assert_eq!(got.get(5), Some(&after(3200, 6)));
        assert_eq!(got.get(6), Some(&after(5000, 7)));
        // No overflow however long the streak.
        assert_eq!(got.last(), Some(&after(5000, 40)));
        assert_eq!(r.on_exit(Duration::ZERO, 40), Restart::GiveUp { after: 40 });
    }

    #[test]
    fn a_sidecar_that_stayed_up_long_enough_starts_a_new_streak() {
        let mut r = Restarts::default();
        delays(&mut r, Duration::from_secs(1), 3, 3);
        assert_eq!(
            r.on_exit(Duration::from_secs(1), 3),
            Restart::GiveUp { after: 3 }
        );
        assert_eq!(r.on_exit(RESTART_STABLE, 3), after(100, 1));
        assert_eq!(r.on_exit(RESTART_STABLE - TICK, 3), after(200, 2));
    }

    #[test]
    fn no_restarts_allowed_means_a_dead_sidecar_ends_the_run() {
        let mut r = Restarts::default();
        assert_eq!(r.on_exit(Duration::ZERO, 0), Restart::GiveUp { after: 0 });
        assert_eq!(r.on_exit(RESTART_STABLE, 0), Restart::GiveUp { after: 0 });
    }

    #[test]
    fn the_runner_starts_its_guard_with_a_command_the_cli_knows() {
        use clap::Parser;
        let cli = crate::Cli::try_parse_from(["dapr-envoy", GUARD_COMMAND]).unwrap();
        assert!(matches!(cli.command, crate::Cmd::Guard));
    }

    #[test]
    fn the_guard_takes_only_real_process_groups() {
        assert_eq!(process_group("4242"), Some(Pid::from_raw(4242)));
        assert_eq!(process_group(" 77 "), Some(Pid::from_raw(77)));
        // killpg(0) would be the guard's own group, killpg(1) every process it may signal.
        for bad in ["0", "1", "-1", "-4242", "", "done!", "12x", "99999999999"] {
            assert_eq!(process_group(bad), None, "{bad:?}");
        }
    }

    /// `sh` in a process group of its own, with a child in the background; returns the shell
    /// and the pid of its child.
    fn group_with_child(script: &str) -> (Child, u32) {
        let mut sh = Command::new("sh")
            .args(["-c", &format!("{script} & echo $!; wait")])
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(sh.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        (sh, line.trim().parse().unwrap())
    }

    /// Gone, or a zombie waiting for init to reap it.
    fn is_gone(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
            s.rsplit(')').next().unwrap().trim().starts_with('Z')
        })
    }

    fn wait_gone(sh: &mut Child, grandchild: u32) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = sh.try_wait().unwrap() {
                while !is_gone(grandchild) {
                    assert!(
                        start.elapsed() < Duration::from_secs(5),
                        "child {grandchild} lives"
                    );
                    thread::sleep(TICK);
                }
                return status;
            }
            if start.elapsed() > Duration::from_secs(5) {
                let _ = killpg(Pid::from_raw(sh.id() as i32), Signal::SIGKILL);
                panic!("the group was not stopped");
            }
            thread::sleep(TICK);
        }
    }

    #[test]
    fn when_the_runner_is_gone_the_guard_stops_each_group_and_its_children() {
        let (mut sh, child) = group_with_child("sleep 300");
        let told = format!("{}\n", sh.id());
        // The shell stays a zombie of this test until it is waited for, so the group never
        // empties here: a short grace.
        assert_eq!(guard(Cursor::new(told), Duration::from_secs(1)), 1);
        assert_eq!(wait_gone(&mut sh, child).signal(), Some(SIGTERM));
    }

    #[test]
    fn a_group_that_ignores_sigterm_gets_sigkill_after_the_grace_period() {
        let (mut sh, child) = group_with_child("trap '' TERM; sleep 300");
        // The runner was killed half-way through a line: the number still counts.
        let told = format!("{}", sh.id());
        let start = Instant::now();
        assert_eq!(guard(Cursor::new(told), Duration::from_millis(300)), 1);
        assert!(start.elapsed() >= Duration::from_millis(300));
        assert_eq!(
            wait_gone(&mut sh, child).signal(),
            Some(Signal::SIGKILL as i32)
        );
    }

    #[test]
    fn after_the_runners_done_the_guard_leaves_every_group_alone() {
        let (mut sh, child) = group_with_child("sleep 300");
        let told = format!("{}\n{GUARD_DONE}\n", sh.id());
        assert_eq!(guard(Cursor::new(told), Duration::from_secs(1)), 0);
        thread::sleep(Duration::from_millis(200));
        assert!(sh.try_wait().unwrap().is_none());
        killpg(Pid::from_raw(sh.id() as i32), Signal::SIGKILL).unwrap();
        wait_gone(&mut sh, child);
    }
}
