fn main() {
    println!("jarvis-kiosk {}", jarvis_kiosk::VERSION);
}
