// `sqlx::migrate!` embeds host/store/migrations at compile time: rebuild when a
// migration is added or changed, or the binary would silently skip it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
