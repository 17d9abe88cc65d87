//! The `waybill` command: `waybill serve` runs a distribution hub.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Parser, Subcommand};
use ring::rand::{SecureRandom, SystemRandom};
use waybill::StoreErrorKind;
use waybill::auth::{PasswordHash, User};
use waybill::backend::{StoreKind, open_store};
use waybill::site::{ServiceId, ServiceKind, ulid_from_parts};
use waybill::store::Store;

/// Waybill: self-hosted release distribution, speaking JFrog Distribution's REST API.
#[derive(Parser, Debug)]
#[command(name = "waybill", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the distribution hub (the JFrog Distribution API) on one address.
    Serve(ServeArgs),
    /// Run an edge node: a read-only artifact server that receives bundles from its hub.
    Edge(EdgeArgs),
    /// Write a detached, armored OpenPGP signature of a file to <file>.asc
    /// (the passphrase, if any, comes from WAYBILL_SIGNING_PASSPHRASE).
    Sign(SignArgs),
    /// Check a detached OpenPGP signature (<file>.asc unless given) of a file.
    Verify(VerifyArgs),
}

#[derive(clap::Args, Debug)]
struct SignArgs {
    /// Armored OpenPGP private key.
    #[arg(long)]
    key: PathBuf,

    /// The file to sign.
    file: PathBuf,
}

#[derive(clap::Args, Debug)]
struct VerifyArgs {
    /// Armored OpenPGP public key.
    #[arg(long)]
    key: PathBuf,

    /// The signed file.
    file: PathBuf,

    /// The armored signature; defaults to <file>.asc.
    signature: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct EdgeArgs {
    #[command(flatten)]
    node: ServeArgs,

    /// This site's name, matched by distribution rules' `site_name`.
    #[arg(long, env = "WAYBILL_SITE_NAME")]
    site_name: String,

    /// This site's city, matched by `city_name`.
    #[arg(long, env = "WAYBILL_CITY")]
    city: String,

    /// This site's ISO 3166 country code, matched by `country_codes`.
    #[arg(long, env = "WAYBILL_COUNTRY")]
    country: String,

    /// The secret the hub must present. Generated into <data-dir>/pairing.token when absent.
    #[arg(long, env = "WAYBILL_PAIRING_TOKEN", hide_env_values = true)]
    pairing_token: Option<String>,

    /// Hub URL to register with on start (credentials from WAYBILL_HUB_USER / WAYBILL_HUB_PASSWORD).
    #[arg(long, env = "WAYBILL_REGISTER_WITH")]
    register_with: Option<String>,

    /// URL the hub reaches this edge at; defaults to http://<listen address>.
    #[arg(long, env = "WAYBILL_PUBLIC_URL")]
    public_url: Option<String>,
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Address to listen on; use port 0 to pick a free port.
    #[arg(long, env = "WAYBILL_LISTEN", default_value = "127.0.0.1:8082")]
    listen: SocketAddr,

    /// Directory for the database, blobs and generated secrets; created if missing.
    #[arg(long, env = "WAYBILL_DATA_DIR", default_value = "./waybill-data")]
    data_dir: PathBuf,

    /// Storage engine: sqlite (embedded default) or sled. Only engines
    /// compiled in (cargo features) can be chosen.
    #[arg(long, env = "WAYBILL_STORE", default_value = "sqlite")]
    store: String,

    /// Seconds a client has to send a request's headers; idle keep-alive
    /// connections close after it too.
    #[arg(long, env = "WAYBILL_HEADER_TIMEOUT_SECS", default_value_t = 30)]
    header_timeout_secs: u64,

    /// Seconds a request body may pause between two pieces (not in all: large uploads keep going).
    #[arg(long, env = "WAYBILL_BODY_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    body_idle_timeout_secs: u64,

    /// Connections served at once; more are closed as they arrive.
    #[arg(long, env = "WAYBILL_MAX_CONNECTIONS", default_value_t = 512)]
    max_connections: usize,

    /// Seconds in-flight requests get to finish after SIGINT/SIGTERM.
    #[arg(long, env = "WAYBILL_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    shutdown_grace_secs: u64,

    /// Seconds between sweeps for blobs no file references (left by crashes); fractions allowed.
    #[arg(long, env = "WAYBILL_SWEEP_INTERVAL_SECS", default_value_t = 6.0 * 3600.0)]
    sweep_interval_secs: f64,

    /// Seconds a blob is spared by the sweep after it was written.
    #[arg(long, env = "WAYBILL_SWEEP_GRACE_SECS", default_value_t = 24 * 3600)]
    sweep_grace_secs: u64,
}

impl ServeArgs {
    fn sweep(&self) -> waybill_app::source::SweepPolicy {
        waybill_app::source::SweepPolicy {
            interval: std::time::Duration::from_secs_f64(
                self.sweep_interval_secs.clamp(0.001, 1e9),
            ),
            grace: std::time::Duration::from_secs(self.sweep_grace_secs),
        }
    }

    fn limits(&self) -> waybill_http::server::Limits {
        use std::time::Duration;
        waybill_http::server::Limits {
            header_timeout: Duration::from_secs(self.header_timeout_secs.max(1)),
            body_idle_timeout: Duration::from_secs(self.body_idle_timeout_secs.max(1)),
            max_connections: self.max_connections.max(1),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
        }
    }
}

/// Key under which the hub's service id is kept.
const SERVICE_ID_SETTING: &str = "system.service_id";
/// The environment variable that sets the first admin password.
const ADMIN_PASSWORD_ENV: &str = "WAYBILL_ADMIN_PASSWORD";

/// Every log line this process wrote recently, for support bundles.
static LOGS: std::sync::LazyLock<waybill_http::LogRing> =
    std::sync::LazyLock::new(waybill_http::LogRing::default);

/// Log output goes to stderr and into `LOGS`.
struct TeeLog;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for TeeLog {
    type Writer = TeeLog;

    fn make_writer(&'a self) -> TeeLog {
        TeeLog
    }
}

impl std::io::Write for TeeLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Whole buffers only, so the ring never holds half of a line twice.
        std::io::stderr().write_all(buf)?;
        LOGS.write(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Offline commands need neither logging nor a runtime.
    match &cli.command {
        Command::Sign(args) => return sign(args),
        Command::Verify(args) => return verify(args),
        _ => {}
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WAYBILL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(TeeLog)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Edge(args) => runtime.block_on(edge(args)),
        Command::Sign(_) | Command::Verify(_) => unreachable!("handled before the runtime starts"),
    }
}

/// The environment variable holding a signing key's passphrase: never a
/// flag, which any user could read from the process list.
const SIGNING_PASSPHRASE_ENV: &str = "WAYBILL_SIGNING_PASSPHRASE";

fn read_text(path: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {what} {}", path.display()))
}

fn sign(args: &SignArgs) -> anyhow::Result<()> {
    use waybill::signing::Signer as _;
    let key = read_text(&args.key, "the private key")?;
    let passphrase = std::env::var(SIGNING_PASSPHRASE_ENV).unwrap_or_default();
    let signer = waybill_pgp::PgpSigner::unlock(&key, &passphrase).map_err(|e| match e {
        waybill_pgp::PgpError::Passphrase => anyhow::anyhow!(
            "the passphrase in {SIGNING_PASSPHRASE_ENV} (unset or wrong) does not unlock {}",
            args.key.display()
        ),
        e => anyhow::Error::new(e).context(format!("reading the key {}", args.key.display())),
    })?;
    let data =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let signature = signer.sign_openpgp(&data)?;
    let mut out = args.file.clone().into_os_string();
    out.push(".asc");
    std::fs::write(&out, signature)
        .with_context(|| format!("writing {}", Path::new(&out).display()))?;
    println!("{}", Path::new(&out).display());
    Ok(())
}

fn verify(args: &VerifyArgs) -> anyhow::Result<()> {
    let key = read_text(&args.key, "the public key")?;
    let sig_path = args.signature.clone().unwrap_or_else(|| {
        let mut p = args.file.clone().into_os_string();
        p.push(".asc");
        p.into()
    });
    let signature = read_text(&sig_path, "the signature")?;
    let data =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    waybill_pgp::verify_detached(&key, &data, &signature).with_context(|| {
        format!(
            "{} does not verify against {} with {}",
            sig_path.display(),
            args.file.display(),
            args.key.display()
        )
    })?;
    println!("good signature: {}", args.file.display());
    Ok(())
}

/// A node's storage and identity, with its bootstrap admin.
struct Opened {
    store: Arc<dyn waybill::store::Store>,
    blobs: Arc<dyn waybill::store::BlobStore>,
    service_id: ServiceId,
    kind: StoreKind,
}

/// A node's store, blobs, identity and bootstrap admin, ready to serve.
async fn open_node(args: &ServeArgs, kind: ServiceKind) -> anyhow::Result<Opened> {
    let store_kind: StoreKind = args.store.parse()?;
    create_private_dir(&args.data_dir)?;
    let store = open_store(store_kind, &args.data_dir).with_context(|| {
        format!(
            "opening the {store_kind} store in {}",
            args.data_dir.display()
        )
    })?;
    let blobs = Arc::new(
        waybill_blob_fs::FsBlobStore::open(args.data_dir.join("blobs"))
            .context("opening the blob store")?,
    );
    let rng = SystemRandom::new();
    let candidate = ServiceId::new(
        kind,
        ulid_from_parts(now_millis(), u128::from_be_bytes(random_bytes(&rng)?)),
    );
    let service_id = ServiceId::parse(
        store
            .setting_or_insert(SERVICE_ID_SETTING, candidate.as_str())
            .await?,
    )?;
    bootstrap_admin(store.as_ref(), &args.data_dir, &rng).await?;
    Ok(Opened {
        store,
        blobs,
        service_id,
        kind: store_kind,
    })
}

/// `WAYBILL_RETRY_ATTEMPTS` and `WAYBILL_RETRY_BASE_MS` tune how distribution retries a site.
fn retry_policy() -> anyhow::Result<waybill_app::distribution::RetryPolicy> {
    let mut p = waybill_app::distribution::RetryPolicy::default();
    if let Ok(v) = std::env::var("WAYBILL_RETRY_ATTEMPTS") {
        p.attempts = v
            .parse()
            .context("WAYBILL_RETRY_ATTEMPTS must be a whole number")?;
    }
    if let Ok(v) = std::env::var("WAYBILL_RETRY_BASE_MS") {
        p.base = std::time::Duration::from_millis(
            v.parse()
                .context("WAYBILL_RETRY_BASE_MS must be a whole number")?,
        );
    }
    Ok(p)
}

async fn bind(args: &ServeArgs) -> anyhow::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    // Tests and scripts read this line to learn the port when --listen used port 0.
    println!("waybill listening on http://{addr}");
    Ok((listener, addr))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let opened = open_node(&args, ServiceKind::Distribution).await?;
    let kind = opened.kind;
    let mut config = waybill_app::HubConfig::new(
        opened.service_id,
        Arc::new(waybill_http::edge::client::HttpEdgeTransport::default()),
    );
    config.retry = retry_policy()?;
    config.logs = LOGS.clone();
    let hub = waybill_app::Hub::new(opened.store, opened.blobs, config);
    hub.node()
        .start(args.sweep())
        .await
        .context("reading login lockouts")?;
    let state = waybill_http::HubState::from(hub);
    // Resume before announcing readiness, and never die of it: a store that
    // is busy now must not take the server down.
    match state.distribution.resume().await {
        Ok(0) => {}
        Ok(resumed) => tracing::info!(resumed, "unfinished distributions resumed"),
        Err(e) => {
            tracing::error!(error = %e, "could not resume unfinished distributions; restart to retry")
        }
    }
    let (listener, addr) = bind(&args).await?;
    tracing::info!(%addr, store = %kind, data_dir = %args.data_dir.display(), service_id = %state.service_id, "waybill hub started");
    let limits = args.limits();
    let distribution = state.distribution.clone();
    http_serve(listener, waybill_http::router(state), limits).await?;
    // Sites stop at their next step and resume at the next start.
    if !distribution.shutdown(limits.shutdown_grace).await {
        tracing::warn!("distributions still running at exit; they resume at the next start");
    }
    tracing::info!("waybill stopped");
    Ok(())
}

/// The pairing token: given, or read from `<data-dir>/pairing.token`, or generated there.
fn pairing_token(args: &EdgeArgs, rng: &SystemRandom) -> anyhow::Result<String> {
    if let Some(t) = args.pairing_token.as_ref().filter(|t| !t.is_empty()) {
        return Ok(t.clone());
    }
    let path = args.node.data_dir.join("pairing.token");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(existing.trim().to_string());
    }
    let token: String = random_bytes::<32>(rng)?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    write_private_file(&path, token.as_bytes())?;
    tracing::info!(path = %path.display(), "generated this edge's pairing token; give it to the hub (mode 0600)");
    Ok(token)
}

async fn edge(args: EdgeArgs) -> anyhow::Result<()> {
    let country = args.country.trim().to_ascii_uppercase();
    if country.len() != 2 || !country.chars().all(|c| c.is_ascii_alphabetic()) {
        anyhow::bail!(
            "--country must be a two-letter ISO 3166 code, not '{}'",
            args.country
        );
    }
    let opened = open_node(&args.node, ServiceKind::Edge).await?;
    let kind = opened.kind;
    let service_id = opened.service_id.clone();
    let cfg = waybill_http::edge::EdgeConfig {
        site_name: args.site_name.clone(),
        city: args.city.clone(),
        country,
        pairing_token: waybill::auth::Secret::new(pairing_token(&args, &SystemRandom::new())?),
    };
    let (listener, addr) = bind(&args.node).await?;
    let state =
        waybill_http::EdgeState::new(opened.store, opened.blobs, service_id.clone(), cfg.clone());
    state
        .node()
        .start(args.node.sweep())
        .await
        .context("reading login lockouts")?;
    tracing::info!(%addr, store = %kind, site = %cfg.site_name, %service_id, "waybill edge started");
    if let Some(hub) = args.register_with.clone() {
        let user = std::env::var("WAYBILL_HUB_USER").unwrap_or_else(|_| "admin".into());
        let password =
            waybill::auth::Secret::new(std::env::var("WAYBILL_HUB_PASSWORD").unwrap_or_default());
        let public_url = args
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let cfg = cfg.clone();
        tokio::spawn(async move {
            match waybill_http::edge::register_with(&hub, &user, &password, &public_url, &cfg).await
            {
                Ok(()) => tracing::info!(%hub, "registered with the hub"),
                Err(why) => tracing::error!(%hub, %why, "registration with the hub failed"),
            }
        });
    }
    http_serve(
        listener,
        waybill_http::edge_router(state),
        args.node.limits(),
    )
    .await?;
    tracing::info!("waybill edge stopped");
    Ok(())
}

async fn http_serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: waybill_http::server::Limits,
) -> anyhow::Result<()> {
    waybill_http::server::serve(listener, app, limits, shutdown_signal())
        .await
        .context("serving HTTP")
}

/// Resolves on SIGINT or SIGTERM, so in-flight requests can finish.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}

/// Creates the `admin` user on first start. Its password comes from
/// `WAYBILL_ADMIN_PASSWORD`, or is generated and written to
/// `<data-dir>/bootstrap.password` (mode 0600). It is never logged.
async fn bootstrap_admin(
    store: &dyn Store,
    data_dir: &Path,
    rng: &SystemRandom,
) -> anyhow::Result<()> {
    if store.get_user(User::BOOTSTRAP_ADMIN).await?.is_some() {
        return Ok(());
    }
    let from_env = std::env::var(ADMIN_PASSWORD_ENV)
        .ok()
        .filter(|p| !p.is_empty());
    let password = match &from_env {
        Some(p) => p.clone(),
        None => random_password(rng)?,
    };
    let salt: [u8; 16] = random_bytes(rng)?;
    let hash = tokio::task::spawn_blocking(move || {
        PasswordHash::create(&password, salt).map(|h| (h, password))
    })
    .await??;
    let (hash, password) = hash;
    let admin = User {
        name: User::BOOTSTRAP_ADMIN.into(),
        password_hash: hash,
        admin: true,
        email: None,
        groups: Vec::new(),
        created: now_millis(),
    };
    match store.create_user(admin).await {
        Ok(()) => {}
        // Another process created it first; theirs stands.
        Err(e) if e.kind() == StoreErrorKind::Conflict => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    if from_env.is_some() {
        tracing::info!("created user 'admin' with the password from {ADMIN_PASSWORD_ENV}");
    } else {
        let path = data_dir.join("bootstrap.password");
        write_private_file(&path, password.as_bytes())?;
        tracing::info!(path = %path.display(), "created user 'admin'; its generated password is in this file (mode 0600)");
    }
    Ok(())
}

fn random_bytes<const N: usize>(rng: &SystemRandom) -> anyhow::Result<[u8; N]> {
    let mut buf = [0u8; N];
    rng.fill(&mut buf)
        .map_err(|_| anyhow::anyhow!("the OS random source failed"))?;
    Ok(buf)
}

/// 24 characters from [A-Za-z0-9], about 143 bits, without modulo bias.
fn random_password(rng: &SystemRandom) -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(24);
    while out.len() < 24 {
        for b in random_bytes::<32>(rng)? {
            // 248 = 4 * 62: bytes above it would favour the first letters.
            if b < 248 && out.len() < 24 {
                out.push(ALPHABET[(b % 62) as usize] as char);
            }
        }
    }
    Ok(out)
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
    }
    Ok(())
}

fn write_private_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(())
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
