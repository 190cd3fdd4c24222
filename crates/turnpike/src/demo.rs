//! `turnpike demo`: a working gateway with nothing installed. Starts a built-in echo
//! upstream on a free port and serves the embedded `demo/demo.yaml` in front of it.

use std::convert::Infallible;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use turnpike_proxy::Gateway;

use crate::cli::DemoArgs;

const DEMO_CONFIG: &str = include_str!("../demo/demo.yaml");

pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    if args.print_config {
        print!("{DEMO_CONFIG}");
        return Ok(ExitCode::SUCCESS);
    }
    let echo_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let listener = echo_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .context("starting the echo upstream")?;
    let upstream = listener.local_addr()?;
    echo_rt.spawn(serve_echo(listener));

    let (listen, up) = (args.listen.to_string(), upstream.to_string());
    let env = |name: &str| match name {
        "DEMO_LISTEN" => Some(listen.clone()),
        "DEMO_UPSTREAM" => Some(up.clone()),
        _ => None,
    };
    let cfg = turnpike_config::load_str(DEMO_CONFIG, Path::new("demo.yaml"), &env)
        .map_err(|e| anyhow::anyhow!("the embedded demo config is invalid:\n{e}"))?;
    let gateway = Gateway::start(&cfg).context("starting the gateway")?;
    let addr = gateway.addr("default").unwrap_or(args.listen);
    println!("Turnpike demo: gateway on http://{addr}, echo upstream on http://{upstream}");
    println!("Try:");
    println!("  curl -i http://{addr}/hello            # route 'everything'");
    println!(
        "  curl -i http://{addr}/api/orders?x=1   # route 'api' (prefix stripped, header added)"
    );
    println!("  curl -i http://{addr}/users/42         # route 'users' (template, path rewritten)");
    println!("Stop with Ctrl-C. `turnpike demo --print-config` shows the configuration.");
    crate::serve::run_until_signal(gateway, None)?;
    echo_rt.shutdown_background();
    Ok(ExitCode::SUCCESS)
}

async fn serve_echo(listener: tokio::net::TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection(TokioIo::new(stream), service_fn(echo))
                .await;
        });
    }
}

/// Answers with what it received, so the demo shows what the gateway forwarded.
async fn echo(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned().into(),
            )
        })
        .collect();
    let reply = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body_bytes": body.len(),
    });
    let mut resp = Response::new(Full::new(Bytes::from(format!("{reply:#}\n"))));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
