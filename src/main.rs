fn main() -> std::process::ExitCode {
    exports_api::cli::main()
}
