//! `enms serve`: resolve settings, bind, prepare, print where to go, and run
//! until SIGINT or SIGTERM.

use enms_server::App;
use tokio::net::TcpListener;

use crate::cli::{AuthMode, ServeArgs};
use crate::settings;

pub async fn run(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut settings = settings::resolve(args)?;
    let listener = listen(&settings.bind).await.map_err(|e| format!("cannot listen on {}: {e}", settings.bind))?;
    let addr = listener.local_addr()?;
    settings.server.auth.required = match settings.auth {
        AuthMode::Auto => !addr.ip().is_loopback(),
        AuthMode::Required => true,
        AuthMode::Off => false,
    };
    if !settings.server.auth.required {
        let reach = if addr.ip().is_loopback() { "this machine" } else { "the network" };
        tracing::warn!(
            "authentication is OFF: anyone on {reach} who can reach {addr} can read and change everything; \
             use --auth required and `enms token create` to protect it"
        );
    }
    let base = settings.server.base_path.clone();
    let demo = settings.server.demo.is_some();
    tracing::info!(database = %settings.server.database_url, demo, "starting");
    let required = settings.server.auth.required;
    let app = App::build(settings.server).await?;
    if required && !app.has_credentials().await? {
        tracing::warn!(
            "authentication is required but nobody can sign in yet: run `enms user create --role admin --name NAME` \
             (a person) or `enms token create --role admin --name NAME` (a program)"
        );
    }
    // Printed on stdout (logs go to stderr) so scripts can wait for it.
    println!("enms {} listening on http://{addr}{base}/ — open it in a browser", env!("CARGO_PKG_VERSION"));
    app.serve(listener, shutdown_signal()).await?;
    Ok(())
}

/// Binds with a deep accept queue: thousands of dashboards reconnecting at
/// once (after a deploy) must not overflow the default 1024 and wait out
/// SYN retransmits. The kernel caps it at `net.core.somaxconn`.
async fn listen(bind: &str) -> std::io::Result<TcpListener> {
    let addr = tokio::net::lookup_host(bind)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "address resolves to nothing"))?;
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
