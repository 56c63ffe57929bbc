//! deploy/nginx/enms.conf, run for real: nginx in front of two instances
//! (shared PostgreSQL and Redis) under the seeds' /api/analytics/ prefix.
//! One instance drains (as on SIGTERM); its clients reconnect through nginx,
//! land on the other and resume with nothing lost or repeated.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

use crate::common::TestServer;
use crate::scaleout::{Postgres, Redis, free_port};
use crate::wsclient::{Ws, alert};

const BASE: &str = "/api/analytics";

struct Nginx {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// The committed configuration with the test's ports put in.
    async fn start(upstreams: [u16; 2]) -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let port = free_port();
        let conf = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/nginx/enms.conf"))
            .expect("deploy/nginx/enms.conf");
        let conf = conf
            .replace("127.0.0.1:8081", &format!("127.0.0.1:{}", upstreams[0]))
            .replace("127.0.0.1:8082", &format!("127.0.0.1:{}", upstreams[1]))
            .replace("listen 8080;", &format!("listen 127.0.0.1:{port};"));
        assert!(conf.contains(&format!("listen 127.0.0.1:{port};")), "the config still listens on 8080");
        let d = dir.path().display();
        std::fs::write(dir.path().join("enms.conf"), conf).expect("write");
        let main = format!(
            "daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/error.log warn;
             events {{ worker_connections 1024; }}
             http {{ access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
                    fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
                    include {d}/enms.conf; }}"
        );
        std::fs::write(dir.path().join("nginx.conf"), main).expect("write");
        let bin = ["/usr/sbin/nginx", "/usr/local/sbin/nginx"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("nginx");
        let child = Command::new(bin)
            .args(["-p", &d.to_string(), "-c", &format!("{d}/nginx.conf"), "-e", &format!("{d}/error.log")])
            .stdout(Stdio::null())
            .spawn()
            .expect("nginx (Debian package nginx-light; scripts/test installs it) starts");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
            assert!(tokio::time::Instant::now() < deadline, "nginx listens in time: {log}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { port, child, _dir: dir }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

// One process (`master_process off`): a master's SIGKILL would orphan its
// workers, still listening, long after the test. Ending the one process
// ends nginx; it gets SIGQUIT (graceful) first, SIGKILL only if it lingers.
impl Drop for Nginx {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-QUIT", &pid]).status();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn instance(db: &Postgres, redis: &Redis) -> (TestServer, u16) {
    let (db_url, bus_url) = (db.url(), redis.url());
    let s = TestServer::with(move |c| {
        c.database_url = db_url;
        c.redis = Some(enms_server::RedisConfig::new(bus_url));
        c.base_path = BASE.into();
    })
    .await;
    let port = s.url.trim_start_matches("http://127.0.0.1:").trim_end_matches(BASE).parse().expect("port");
    (s, port)
}

async fn ws(nginx: &Nginx, last: Option<&str>) -> Ws {
    let mut url = nginx.url(&format!("{BASE}/api/v1/ws/events")).replacen("http://", "ws://", 1);
    if let Some(id) = last {
        url.push_str(&format!("?last_event_id={id}"));
    }
    let (inner, _) = connect_async(url).await.expect("websocket through nginx");
    let mut ws = Ws { inner };
    let hello = ws.next_json().await;
    assert_eq!(hello["status"], "connected", "{hello}");
    if last.is_some() {
        assert_eq!(hello["recovered"], true, "{hello}");
    }
    ws
}

/// Reads test events until `n`, reconnecting through nginx (with the last
/// id) whenever the server closes the stream.
async fn collect(nginx: &Nginx, mut ws: Ws, n: usize) -> (Vec<String>, usize) {
    let (mut got, mut last, mut reconnects) = (Vec::new(), None::<String>, 0);
    while got.len() < n {
        let msg = tokio::time::timeout(Duration::from_secs(15), ws.inner.next()).await.expect("a message in time");
        match msg {
            Some(Ok(Message::Text(t))) => {
                let e: Value = serde_json::from_str(&t).expect("json");
                if let Some(id) = e["id"].as_str() {
                    last = Some(id.to_owned());
                }
                if e["type"] == "system_alert" && e["data"]["source"] == "it" {
                    got.push(e["data"]["message"].as_str().expect("message").to_owned());
                }
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Close(frame))) => {
                assert_eq!(frame.map(|f| u16::from(f.code)), Some(1001), "a draining server says 1001");
                reconnects += 1;
                ws = self::ws(nginx, last.as_deref()).await;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    (got, reconnects)
}

#[tokio::test]
async fn nginx_balances_two_instances_and_clients_of_a_draining_one_resume_on_the_other() {
    let (redis, db) = (Redis::start().await, Postgres::create().await);
    let ((a, port_a), (b, port_b)) = (instance(&db, &redis).await, instance(&db, &redis).await);
    let nginx = Nginx::start([port_a, port_b]).await;
    let http = reqwest::Client::new();

    // The seeds' prefix and plain /api/v1 both reach the app.
    let ui = http.get(nginx.url(&format!("{BASE}/ui/"))).send().await.expect("ui");
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.expect("html").contains("<html"));
    let health = http.get(nginx.url("/api/v1/health")).send().await.expect("health");
    assert_eq!(health.status(), 200);

    let clients: Vec<Ws> = futures_util::future::join_all((0..4).map(|_| ws(&nginx, None))).await;
    let publish = |m: String| {
        let (http, url) = (http.clone(), nginx.url("/api/v1/events"));
        async move {
            let r = http.post(url).json(&alert(&m)).send().await.expect("publish through nginx");
            assert_eq!(r.status(), 202);
        }
    };
    for i in 0..10 {
        publish(format!("m{i}")).await;
    }
    // A drains: its clients get 1001 and come back through nginx.
    a.stop().await;
    for i in 10..20 {
        publish(format!("m{i}")).await;
    }
    let results = futures_util::future::join_all(clients.into_iter().map(|c| collect(&nginx, c, 20))).await;
    let expected: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    for (got, _) in &results {
        assert_eq!(got, &expected, "every event once, in order");
    }
    let moved: usize = results.iter().map(|(_, r)| r).sum();
    assert!(moved >= 1, "least_conn put some of the four clients on the drained instance");
    b.stop().await;
    db.drop().await;
}
