//! A private PostgreSQL cluster for a test that must crash or restart its database
//! without disturbing the tests sharing the suite's server: `initdb` into a temporary
//! directory with the installed server binaries, trust authentication, a port of its
//! own; stopped and removed when dropped.
//!
//! PostgreSQL refuses to run as root: when the tests run as root, every server command
//! runs as the `postgres` system user (with `runuser`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::processes::free_port;

/// The directory of the newest installed server binaries: `PG_BIN_DIR`, else the
/// highest version under `/usr/lib/postgresql/*/bin`.
fn binaries() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("no PostgreSQL server binaries under /usr/lib/postgresql (set PG_BIN_DIR)")?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("pg_ctl").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).context("no pg_ctl under /usr/lib/postgresql/*/bin (set PG_BIN_DIR)")
}

/// Whether this process runs as root (PostgreSQL then runs as `postgres`).
fn running_as_root() -> bool {
    // /proc/self belongs to the process's effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

/// A PostgreSQL cluster of the test's own; stopped (immediately) and deleted when dropped.
pub struct PgCluster {
    bin: PathBuf,
    data: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The mount point of the filesystem of the `postgres` database's own, when the test
    /// gave it one ([`PgCluster::give_database_a_disk`]).
    disk: Option<PathBuf>,
}

impl PgCluster {
    /// Creates a cluster in a fresh temporary directory and starts it.
    pub async fn start() -> anyhow::Result<Self> {
        let bin = binaries()?;
        let port = free_port()?;
        let data = std::env::temp_dir().join(format!("order-processing-pg-{}", uuid::Uuid::new_v4().simple()));
        let cluster = Self { bin, data, port, disk: None };
        let data_dir = cluster.data.to_str().context("a temporary directory that is UTF-8")?.to_owned();
        let init = ["-D", &data_dir, "-U", "postgres", "--auth=trust", "--no-sync", "--encoding=UTF8", "--locale=C"];
        tokio::task::spawn_blocking({
            let command = cluster.command("initdb", &init);
            move || run(command, "initdb")
        })
        .await
        .context("initdb task")??;
        cluster
            .pg_ctl(&[
                "start",
                "-w",
                "-t",
                "60",
                "-l",
                &cluster.log().to_string_lossy(),
                "-o",
                &cluster.server_options(),
            ])
            .await?;
        Ok(cluster)
    }

    /// The options the server runs with: its port, TCP on 127.0.0.1 only, its socket in
    /// its own directory, enough connections for several service instances. No fsync:
    /// the test crashes the server, not the machine, and WAL replay only needs what
    /// reached the operating system.
    fn server_options(&self) -> String {
        format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c max_connections=200 -c fsync=off -c full_page_writes=off",
            self.port,
            self.data.display()
        )
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The URL of its `template1` database, where an operator stands while the
    /// `postgres` database is changed or refuses connections.
    fn template1_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/template1", self.port)
    }

    /// A session on `template1`, as the operator.
    async fn operator(&self) -> anyhow::Result<sqlx::PgConnection> {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&self.template1_url()).await.context("connecting as the operator")
    }

    /// The server's log file.
    pub fn log(&self) -> PathBuf {
        self.data.with_extension("log")
    }

    /// Crashes and restarts the server as `pg_ctl -m immediate restart` does: every
    /// backend is killed without a checkpoint, and the server recovers from its WAL at
    /// the next start. Returns once it accepts connections again.
    pub async fn crash_restart(&self) -> anyhow::Result<()> {
        self.pg_ctl(&[
            "restart",
            "-m",
            "immediate",
            "-w",
            "-t",
            "60",
            "-l",
            &self.log().to_string_lossy(),
            "-o",
            &self.server_options(),
        ])
        .await
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let path = self.bin.join(program);
        let mut command = if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        };
        // A directory the postgres user may stand in (the test's may be root's).
        command.args(args).current_dir("/tmp").stdin(Stdio::null());
        command
    }

    async fn pg_ctl(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut full = vec!["-D", self.data.to_str().context("a UTF-8 data directory")?];
        full.extend_from_slice(args);
        let command = self.command("pg_ctl", &full);
        let what = format!("pg_ctl {}", args.first().copied().unwrap_or_default());
        tokio::task::spawn_blocking(move || run(command, &what)).await.context("pg_ctl task")?
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Freezes the whole server (SIGSTOP to the postmaster, then to every process it
    /// started), as a hung database host: connections stay open, nothing is answered
    /// and no new session starts until [`PgCluster::resume`].
    pub fn pause(&self) -> anyhow::Result<()> {
        let postmaster = self.postmaster()?;
        // The postmaster first, so that it starts no process after its children are listed.
        kill(postmaster, Signal::SIGSTOP).context("stopping the postmaster")?;
        for child in children_of(postmaster) {
            // A backend that exited in between is not an error.
            let _ = kill(child, Signal::SIGSTOP);
        }
        Ok(())
    }

    /// Lets a paused server go on (SIGCONT to every process of it); harmless when it
    /// runs.
    pub fn resume(&self) -> anyhow::Result<()> {
        let postmaster = self.postmaster()?;
        for child in children_of(postmaster) {
            let _ = kill(child, Signal::SIGCONT);
        }
        kill(postmaster, Signal::SIGCONT).context("resuming the postmaster")
    }

    /// Makes the server refuse every write from the next transaction of each session on
    /// (`refusing`), or accept them again: `default_transaction_read_only` for the whole
    /// server, reloaded. Connections and reads go on as before; a write fails with
    /// SQLSTATE 25006, as on a primary demoted to a standby.
    pub async fn refuse_writes(&self, refusing: bool) -> anyhow::Result<()> {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&self.url()).await.context("connecting as the operator")?;
        // The operator's own session must still write (ALTER SYSTEM, when read-only by default).
        sqlx::query("SET default_transaction_read_only = off").execute(&mut admin).await?;
        let change = if refusing {
            "ALTER SYSTEM SET default_transaction_read_only = on"
        } else {
            "ALTER SYSTEM RESET default_transaction_read_only"
        };
        sqlx::query(change).execute(&mut admin).await.context("changing the server's configuration")?;
        sqlx::query("SELECT pg_reload_conf()").execute(&mut admin).await.context("reloading the configuration")?;
        admin.close().await.ok();
        Ok(())
    }

    /// Ends every session of the `postgres` database and refuses new ones
    /// (`refusing`), or takes them again: `ALLOW_CONNECTIONS`, from the `template1`
    /// database. The server runs on; a connection attempt is answered at once with
    /// SQLSTATE 55000 ("not currently accepting connections"), as while a failover is
    /// under way or a pooler in front of the server is down.
    pub async fn refuse_connections(&self, refusing: bool) -> anyhow::Result<()> {
        use sqlx::Connection;
        let mut admin = self.operator().await?;
        let change = format!("ALTER DATABASE postgres ALLOW_CONNECTIONS {refusing}", refusing = !refusing);
        sqlx::query(&change).execute(&mut admin).await.context("changing whether the database takes connections")?;
        if refusing {
            sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'postgres'")
                .execute(&mut admin)
                .await
                .context("ending the database's sessions")?;
        }
        admin.close().await.ok();
        Ok(())
    }

    /// Ends every session of the `postgres` database and takes every connection slot
    /// of the server before the sessions can come back, as another application
    /// leaking connections would: until the returned connections are dropped, every new
    /// one is refused with SQLSTATE 53300 ("sorry, too many clients already"), which
    /// clients, unlike most refusals, take for a reason to keep trying. The slots are
    /// taken on `template1` while the `postgres` database refuses connections, so that
    /// no session of it gets one in between.
    pub async fn take_every_connection(&self) -> anyhow::Result<Vec<sqlx::PgConnection>> {
        use sqlx::Connection;
        let mut admin = self.operator().await?;
        self.refuse_connections(true).await?;
        let url = self.template1_url();
        let mut taken = Vec::new();
        loop {
            match sqlx::PgConnection::connect(&url).await {
                Ok(connection) => taken.push(connection),
                Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("53300") => break,
                Err(error) => return Err(error).context("taking a connection slot"),
            }
        }
        sqlx::query("ALTER DATABASE postgres ALLOW_CONNECTIONS true")
            .execute(&mut admin)
            .await
            .context("letting the database take connections again")?;
        taken.push(admin);
        Ok(taken)
    }

    /// Moves the `postgres` database onto a filesystem of its own of `megabytes` (a
    /// tmpfs mounted for the test, which needs root), so that [`PgCluster::fill_disk`]
    /// can leave it no room while the WAL and the server's own files keep theirs, as
    /// when the volume of a database's tablespace fills up. Only before anything
    /// connects to that database.
    pub async fn give_database_a_disk(&mut self, megabytes: u32) -> anyhow::Result<()> {
        use sqlx::Connection;
        let disk = self.data.with_extension("disk");
        std::fs::create_dir_all(&disk).with_context(|| format!("creating {}", disk.display()))?;
        // Removed when dropped, mounted or not.
        self.disk = Some(disk.clone());
        let mut mount = Command::new("mount");
        mount.args(["-t", "tmpfs", "-o", &format!("size={megabytes}m,mode=0755"), "tmpfs"]).arg(&disk);
        run(mount, "mount (a filesystem of the test's own needs root)")?;
        let location = disk.join("tablespace");
        std::fs::create_dir(&location).with_context(|| format!("creating {}", location.display()))?;
        if running_as_root() {
            let mut chown = Command::new("chown");
            chown.arg("postgres:postgres").arg(&location);
            run(chown, "chown")?;
        }
        let mut admin = self.operator().await?;
        let location = location.to_str().context("a UTF-8 mount point")?.replace('\'', "''");
        sqlx::raw_sql(&format!("CREATE TABLESPACE own_disk LOCATION '{location}'"))
            .execute(&mut admin)
            .await
            .context("creating the tablespace")?;
        sqlx::raw_sql("ALTER DATABASE postgres SET TABLESPACE own_disk")
            .execute(&mut admin)
            .await
            .context("moving the database")?;
        admin.close().await.ok();
        Ok(())
    }

    /// Fills the database's filesystem (`full`: a file written until no byte more
    /// fits), or frees it again. Writes that need new space then fail with SQLSTATE
    /// 53100 ("could not extend file ...: No space left on device"); reads, and updates
    /// that fit in pages the tables have, go on.
    pub fn fill_disk(&self, full: bool) -> anyhow::Result<()> {
        use std::io::Write;
        let disk = self.disk.as_ref().context("the database has no disk of its own (give_database_a_disk)")?;
        let filler = disk.join("filler");
        if !full {
            return std::fs::remove_file(&filler).with_context(|| format!("removing {}", filler.display()));
        }
        let mut file = std::fs::File::create(&filler).with_context(|| format!("creating {}", filler.display()))?;
        let chunk = vec![0u8; 1 << 20];
        loop {
            match file.write_all(&chunk) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::StorageFull => return Ok(()),
                Err(error) => return Err(error).with_context(|| format!("writing {}", filler.display())),
            }
        }
    }

    /// The postmaster's process id, from the first line of `postmaster.pid`.
    fn postmaster(&self) -> anyhow::Result<Pid> {
        let file = self.data.join("postmaster.pid");
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        let pid = text.lines().next().and_then(|line| line.trim().parse().ok());
        pid.map(Pid::from_raw).with_context(|| format!("no process id in {}", file.display()))
    }
}

/// The processes whose parent is `parent`, from `/proc`.
fn children_of(parent: Pid) -> Vec<Pid> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            // `pid (name) state ppid ...`: the name may hold spaces, so split after its `)`.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok());
            ppid == Some(parent.as_raw())
        })
        .map(Pid::from_raw)
        .collect()
}

/// Runs `command`, failing with its output when it fails.
fn run(mut command: Command, what: &str) -> anyhow::Result<()> {
    let output = command.output().with_context(|| format!("running {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed with {}: {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // A paused server would not stop: a test that failed mid-pause leaves it so.
        let _ = self.resume();
        if let Some(data) = self.data.to_str() {
            let mut stop = self.command("pg_ctl", &["-D", data, "stop", "-m", "immediate", "-w", "-t", "30"]);
            let _ = stop.stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
        if let Some(disk) = &self.disk {
            let _ = Command::new("umount").arg("--lazy").arg(disk).stdout(Stdio::null()).stderr(Stdio::null()).status();
            let _ = std::fs::remove_dir_all(disk);
        }
        let _ = std::fs::remove_dir_all(&self.data);
        let _ = std::fs::remove_file(self.log());
    }
}

/// Waits until `url` accepts a connection, failing after `timeout`.
pub async fn wait_until_accepting(url: &str, timeout: Duration) -> anyhow::Result<()> {
    use sqlx::Connection;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match sqlx::PgConnection::connect(url).await {
            Ok(connection) => {
                let _ = connection.close().await;
                return Ok(());
            }
            Err(error) if tokio::time::Instant::now() > deadline => {
                return Err(error).with_context(|| format!("connecting to {url}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
