//! Rebuilds the server when any dashboard asset changes, including files
//! added to the folder (the embedding derive only tracks the files it saw).

fn main() {
    println!("cargo:rerun-if-changed=assets/ui");
}
