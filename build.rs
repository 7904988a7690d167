//! Records the versions of the main dependencies (from Cargo.lock) for the run manifest.

fn main() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    let wanted = [
        "polars",
        "linfa",
        "linfa-clustering",
        "linfa-trees",
        "ndarray",
        "plotters",
    ];
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let mut found = Vec::new();
    let mut name: Option<String> = None;
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_string());
        } else if let Some(v) = line.strip_prefix("version = ") {
            if let Some(n) = name.take() {
                if wanted.contains(&n.as_str()) && !found.iter().any(|(f, _): &(String, String)| f == &n) {
                    found.push((n, v.trim_matches('"').to_string()));
                }
            }
        }
    }
    let joined: Vec<String> = found.iter().map(|(n, v)| format!("{n}={v}")).collect();
    println!("cargo:rustc-env=CLIENTSEG_DEPENDENCIES={}", joined.join(";"));
}
