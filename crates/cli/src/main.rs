//! temporary check harness
mod assets;

fn main() {
    let _ = (
        assets::INDEX_HTML.len(),
        assets::CLIENT_VERSION,
        assets::client_file("socket.io.js"),
    );
}
