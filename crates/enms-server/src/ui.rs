//! The embedded dashboard: its files are compiled into the binary (plants are
//! often offline, so nothing comes from a CDN) and served under URLs that
//! carry a hash of their content, so a new release is picked up without a
//! forced refresh while unchanged files stay cached for good.
//!
//! The page itself (`index.html`) is a template: `%BASE%` becomes the
//! configured base path, `%IMPORTMAP%` an import map from the modules' bare
//! names (`enms/app.js`) to their hashed URLs, and `%ASSET(path)%` the hashed
//! URL of one file. Modules import each other by bare name, so a change to
//! one module changes only its own URL and the (never cached) page.

use std::collections::HashMap;

use rust_embed::RustEmbed;
use serde_json::{Map, Value};

#[derive(RustEmbed)]
#[folder = "assets/ui/"]
struct Files;

/// Prefix of every asset URL, after the base path.
pub const ASSETS_PREFIX: &str = "/ui/assets/";

pub struct Asset {
    pub bytes: bytes::Bytes,
    pub content_type: &'static str,
}

/// The dashboard, rendered once for one base path.
pub struct Ui {
    index: String,
    /// Keyed by the hashed path under [`ASSETS_PREFIX`], e.g. `js/app.1a2b3c4d5e.js`.
    assets: HashMap<String, Asset>,
}

impl Ui {
    pub fn new(base_path: &str) -> Self {
        let base = base_path.trim_end_matches('/');
        let mut assets = HashMap::new();
        let mut urls = HashMap::new();
        for path in Files::iter() {
            if path == "index.html" {
                continue;
            }
            let Some(file) = Files::get(&path) else { continue };
            let hash: String = file.metadata.sha256_hash()[..5].iter().map(|b| format!("{b:02x}")).collect();
            let hashed = hashed_name(&path, &hash);
            urls.insert(path.to_string(), format!("{base}{ASSETS_PREFIX}{hashed}"));
            assets.insert(hashed, Asset { bytes: file.data.into_owned().into(), content_type: content_type(&path) });
        }
        let template =
            Files::get("index.html").map(|f| String::from_utf8_lossy(&f.data).into_owned()).unwrap_or_default();
        Self { index: render(&template, base, &urls), assets }
    }

    pub fn index(&self) -> &str {
        &self.index
    }

    pub fn asset(&self, hashed: &str) -> Option<&Asset> {
        self.assets.get(hashed)
    }
}

/// `js/app.js` → `js/app.<hash>.js`; names keep their extension last so the
/// content type stays obvious to proxies and browsers.
fn hashed_name(path: &str, hash: &str) -> String {
    match path.rsplit_once('.') {
        Some((stem, ext)) if !stem.ends_with('/') => format!("{stem}.{hash}.{ext}"),
        _ => format!("{path}.{hash}"),
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "text/plain; charset=utf-8",
    }
}

fn render(template: &str, base: &str, urls: &HashMap<String, String>) -> String {
    let mut imports = Map::new();
    for (path, url) in urls {
        if let Some(module) = path.strip_prefix("js/") {
            imports.insert(format!("enms/{module}"), Value::String(url.clone()));
        }
    }
    let import_map = serde_json::json!({ "imports": imports }).to_string();
    let mut out = template.replace("%BASE%", &html_attr(base)).replace("%IMPORTMAP%", &import_map);
    while let Some(start) = out.find("%ASSET(") {
        let Some(len) = out[start..].find(")%") else { break };
        let path = &out[start + 7..start + len];
        let url = urls.get(path).cloned().unwrap_or_else(|| format!("{base}{ASSETS_PREFIX}missing/{path}"));
        out.replace_range(start..start + len + 2, &url);
    }
    out
}

/// The base path comes from configuration, but it still lands inside HTML.
fn html_attr(v: &str) -> String {
    v.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_page_names_exists_and_carries_its_hash() {
        let ui = Ui::new("/api/analytics/");
        assert!(!ui.index().contains("%ASSET("), "unresolved asset in the page");
        assert!(!ui.index().contains("missing/"), "page names a file that is not embedded");
        assert!(ui.index().contains(r#""enms/app.js":"/api/analytics/ui/assets/js/app."#));
        let app = ui.assets.keys().find(|k| k.starts_with("js/app.")).expect("app module");
        assert!(app.ends_with(".js") && app.len() == "js/app..js".len() + 10, "{app}");
        assert_eq!(ui.asset(app).map(|a| a.content_type), Some("text/javascript; charset=utf-8"));
    }

    #[test]
    fn the_hash_changes_the_name_not_the_extension() {
        assert_eq!(hashed_name("vendor/uPlot.min.css", "abc"), "vendor/uPlot.min.abc.css");
        assert_eq!(hashed_name("LICENSE", "abc"), "LICENSE.abc");
    }
}
