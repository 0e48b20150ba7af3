//! Compiles `proto/greeter.proto`, the service of the tests, the benchmark and `examples/grpc.rs`
//! (the library itself uses no generated code). Needs `protoc`, like etcd-client does.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/greeter.proto");
    tonic_prost_build::configure().compile_protos(&["proto/greeter.proto"], &["proto"])?;
    Ok(())
}
