fn main() {
    eprintln!("clawgate: the gateway is not built yet");
    std::process::exit(2);
}
