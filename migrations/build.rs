//! `sqlx::migrate!` embeds the SQL files at compile time; without this, adding a
//! migration would not rebuild the crate and the binaries would miss it.

fn main() {
    println!("cargo:rerun-if-changed=oms");
    println!("cargo:rerun-if-changed=inventory");
    println!("cargo:rerun-if-changed=shared");
}
