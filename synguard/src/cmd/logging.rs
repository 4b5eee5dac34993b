//! Log output: readable lines by default, one JSON object per line with `--log-format json`;
//! levels from RUST_LOG (default info). synguard logs events (attach, cookies on/off, kernel
//! settings), never packets, so the volume stays small under any flood.

use std::io::Write as _;

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            let line = serde_json::json!({
                "ts": buf.timestamp_millis().to_string(),
                "level": record.level().as_str(),
                "target": record.target(),
                "msg": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        });
    }
    builder.init();
}
