//! Fuzzes the MQTT messages: device telemetry the station reads, the retained
//! configuration a device reads, and broker addresses: never a panic.
#![no_main]

use custody::telemetry::{DeviceConfig, Telemetry, parse_broker};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Telemetry::parse(data, "A100001");
    let _ = DeviceConfig::parse(data);
    if let Ok(text) = std::str::from_utf8(data)
        && let Some((host, _port)) = parse_broker(text)
    {
        assert!(!host.is_empty());
    }
});
