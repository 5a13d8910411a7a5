//! Compiles `lab/**/*.proto` with protox (pure Rust, no system protoc) and tonic-prost-build.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "lab/v1/agent.proto",
        "lab/v1/operator.proto",
        "lab/v1/jobs.proto",
        "lab/v1/backup.proto",
        "lab/v1/schedules.proto",
        "lab/v1/secrets.proto",
        "lab/store/v1/store.proto",
        "lab/etcd/rpc.proto",
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["."])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // The `Connect` RPC would collide with the generated `connect` constructor; we dial through
        // `client::connect` anyway.
        .build_transport(false)
        // Small per-stream buffers (see src/codec.rs): long-lived agent sessions stay cheap.
        .codec_path("crate::codec::LeanCodec")
        .compile_fds(descriptors)?;
    Ok(())
}
