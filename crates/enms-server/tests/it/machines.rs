use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestServer, assert_error};

#[tokio::test]
async fn create_list_get_patch_delete() {
    let s = TestServer::start().await;
    let body = json!({"name": "Compressor-9", "type": "compressor", "location": "Hall C", "rated_power_kw": 90.0});
    let (status, created) = s.post("/api/v1/machines", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["status"], "offline", "no reading yet");
    assert_eq!(created["last_reading_at"], serde_json::Value::Null);
    let id = created["id"].as_str().expect("id");

    let (_, list) = s.get("/api/v1/machines").await;
    assert_eq!(list[0]["id"], id, "the seeds read .[0].id");
    for field in ["id", "name", "type", "location", "rated_power_kw", "created_at", "last_reading_at", "status"] {
        assert!(list[0].get(field).is_some(), "{field} missing from {list}");
    }

    let (status, patched) = s.patch(&format!("/api/v1/machines/{id}"), &json!({"location": "Hall D"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((patched["location"].as_str(), patched["rated_power_kw"].as_f64()), (Some("Hall D"), Some(90.0)));
    let (_, cleared) = s.patch(&format!("/api/v1/machines/{id}"), &json!({"rated_power_kw": null})).await;
    assert_eq!(cleared["rated_power_kw"], serde_json::Value::Null);
    assert_eq!(s.get(&format!("/api/v1/machines/{id}")).await.1["location"], "Hall D");

    assert_eq!(s.delete(&format!("/api/v1/machines/{id}")).await.0, StatusCode::NO_CONTENT);
    assert_error(&s.get(&format!("/api/v1/machines/{id}")).await, StatusCode::NOT_FOUND, "not_found");
    assert_error(&s.delete(&format!("/api/v1/machines/{id}")).await, StatusCode::NOT_FOUND, "not_found");
    s.stop().await;
}

#[tokio::test]
async fn bad_machine_input_gets_a_structured_error_and_changes_nothing() {
    let s = TestServer::start().await;
    let id = s.create_machine("C-1").await;
    let path = format!("/api/v1/machines/{id}");

    let e = assert_error(&s.get("/api/v1/machines/not-a-uuid").await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_id");
    assert_eq!(e["field"], "id");
    assert_error(
        &s.get("/api/v1/machines/00000000-0000-0000-0000-000000000000").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    let cases = [
        (json!({"type": "hvac"}), "invalid_field", "name"),
        (json!({"name": "x", "type": "hvac", "rated_power_kw": "big"}), "invalid_field", "rated_power_kw"),
        (json!({"name": "x", "type": "hvac", "colour": "red"}), "invalid_field", "colour"),
        (json!({"name": "   ", "type": "hvac"}), "required", "name"),
        (json!({"name": "x", "type": "hvac", "rated_power_kw": -5}), "out_of_range", "rated_power_kw"),
        (json!({"name": "x", "type": "hvac", "id": "123"}), "invalid_field", "id"),
    ];
    for (body, code, field) in cases {
        let e = assert_error(&s.post("/api/v1/machines", &body).await, StatusCode::UNPROCESSABLE_ENTITY, code);
        assert_eq!(e["field"], field, "{body}");
    }
    let e = assert_error(
        &s.post("/api/v1/machines", &json!({"name": "c-1", "type": "x"})).await,
        StatusCode::CONFLICT,
        "conflict",
    );
    assert_eq!(e["field"], "name", "names are unique regardless of case");

    let json_type = "application/json";
    assert_error(
        &s.send("POST", "/api/v1/machines", json_type, "{\"name\": ").await,
        StatusCode::BAD_REQUEST,
        "malformed_json",
    );
    assert_error(
        &s.send("POST", "/api/v1/machines", json_type, r#"{"name":"a","type":"b"} {}"#).await,
        StatusCode::BAD_REQUEST,
        "malformed_json",
    );
    assert_error(
        &s.send("POST", "/api/v1/machines", "text/plain", "{}").await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let huge = format!("{{\"name\": \"{}\", \"type\": \"x\"}}", "a".repeat(70_000));
    assert_error(
        &s.send("POST", "/api/v1/machines", json_type, huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    assert_error(&s.patch(&path, &json!({"name": ""})).await, StatusCode::UNPROCESSABLE_ENTITY, "required");
    assert_error(&s.get("/api/v1/nothing-here").await, StatusCode::NOT_FOUND, "route_not_found");
    assert_error(
        &s.send("PUT", "/api/v1/machines", json_type, "{}").await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );

    let (_, list) = s.get("/api/v1/machines").await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["name"], "C-1");
    s.stop().await;
}
