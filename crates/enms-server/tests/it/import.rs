use reqwest::StatusCode;

use crate::common::{TestServer, assert_error};

const CSV: &str = "text/csv";

fn csv_rows(n: usize) -> String {
    let end = chrono::Utc::now() - chrono::Duration::days(2);
    let mut out = String::from("timestamp,power_kw,energy_kwh,production_units,pressure_bar\n");
    for i in 0..n {
        let ts = end - chrono::Duration::minutes(15 * i as i64);
        out.push_str(&format!("{},{},{},,7.{}\n", ts.to_rfc3339(), 30 + i, (30 + i) as f64 / 4.0, i % 10));
    }
    out
}

#[tokio::test]
async fn csv_import_for_one_machine_and_by_machine_column() {
    let s = TestServer::start().await;
    let c1 = s.create_machine("C-1").await;
    let c2 = s.create_machine("C-2").await;
    let (status, body) = s.send("POST", "/api/v1/readings/import?machine=c-1", CSV, csv_rows(50)).await;
    assert_eq!((status, body["accepted"].as_u64()), (StatusCode::OK, Some(50)), "{body}");
    assert_eq!(s.count(&c1).await, 50);

    let ts = (chrono::Utc::now() - chrono::Duration::hours(3)).to_rfc3339();
    let mixed = format!("timestamp,machine,power_kw,energy_kwh\n{ts},C-2,5,1.25\n{ts},{c1},6,1.5\n");
    let (status, body) = s.send("POST", "/api/v1/readings/import", CSV, mixed).await;
    assert_eq!((status, body["accepted"].as_u64()), (StatusCode::OK, Some(2)), "{body}");
    assert_eq!((s.count(&c1).await, s.count(&c2).await), (51, 1));
    let (_, raw) = s.get(&format!("/api/v1/machines/{c1}/readings?start=2000-01-01T00:00:00Z&limit=1")).await;
    assert!(raw["points"][0]["extra"]["pressure_bar"].is_f64(), "extra columns are kept: {raw}");
    s.stop().await;
}

#[tokio::test]
async fn bad_csv_is_refused_whole_naming_the_line() {
    let s = TestServer::start().await;
    let c1 = s.create_machine("C-1").await;
    let good = csv_rows(5);
    let lines: Vec<&str> = good.lines().collect();
    let truncated = &good[..good.len() - 20];
    let cases = [
        (format!("{}\n{}\nnot,a,row\n", lines[0], lines[1]), 3, "malformed_csv"),
        (truncated.to_owned(), 6, "malformed_csv"),
        (good.replace(",32,", ",thirty-two,"), 4, "invalid_type"),
        (good.replace(",33,", ",NaN,"), 5, "not_finite"),
        (good.replace(",34,", ",inf,"), 6, "not_finite"),
        ("timestamp,power_kw\n2026-01-01T00:00:00Z,1\n".to_owned(), 1, "invalid_header"),
        (lines[0].to_owned(), 1, "empty"),
        (format!("{}\n2099-01-01T00:00:00Z,1,1,,\n", lines[0]), 2, "future_timestamp"),
    ];
    for (body, line, code) in cases {
        let e = assert_error(
            &s.send("POST", "/api/v1/readings/import?machine=C-1", CSV, body.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
        );
        assert_eq!(e["line"], line, "{body}\n{e}");
    }
    let no_machine = assert_error(
        &s.send("POST", "/api/v1/readings/import", CSV, good.clone()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "machine_required",
    );
    assert_eq!(no_machine["line"], 1);
    assert_error(
        &s.send("POST", "/api/v1/readings/import?machine=C-9", CSV, good.clone()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_machine",
    );
    assert_error(
        &s.send("POST", "/api/v1/readings/import?machine=C-1", "application/json", good).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let binary: Vec<u8> = vec![b't', 0xff, 0xfe, b'\n', 0x00];
    assert_error(
        &s.send("POST", "/api/v1/readings/import?machine=C-1", CSV, binary).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "malformed_csv",
    );
    assert_eq!(s.count(&c1).await, 0, "nothing of a refused file is stored");
    s.stop().await;
}
