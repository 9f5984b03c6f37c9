//! Debian's Chromium driven over WebDriver (ChromeDriver on loopback), for
//! the tests that need a real browser: its cookies, its forms, its
//! redirects. Each test keeps its pages as screenshots under
//! `target/console-screenshots/`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

/// ChromeDriver on a free loopback port, stopped when dropped.
pub struct ChromeDriver {
    process: Child,
    url: String,
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

pub async fn chromedriver() -> ChromeDriver {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let process = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| {
            panic!(
                "cannot start chromedriver ({error}): install Debian's chromium and \
                 chromium-driver (`cargo xtask test` does)"
            )
        });
    let driver = ChromeDriver {
        process,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{}/status", driver.url))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "chromedriver did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    driver
}

pub async fn browser(driver: &ChromeDriver) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--no-first-run"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

fn screenshots() -> PathBuf {
    let dir = crate::support::root().join("target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub async fn keep_screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// Clicks the element `locator` finds.
pub async fn click(client: &Client, locator: Locator<'_>) {
    client.find(locator).await.unwrap().click().await.unwrap();
}

/// The text of the element `css`, waited for (and looked for again when
/// the page under it was replaced); the page, when it never comes.
pub async fn text_of(client: &Client, css: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let found = client
            .wait()
            .at_most(deadline.saturating_duration_since(std::time::Instant::now()))
            .for_element(Locator::Css(css))
            .await;
        let error = match found {
            // The element of a page being replaced (a form just posted) goes
            // stale under us: look again on the page that replaced it.
            Ok(element) => match element.text().await {
                Ok(text) => return text,
                Err(_) if std::time::Instant::now() < deadline => continue,
                Err(error) => error,
            },
            Err(error) => error,
        };
        let url = client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        let page = client.source().await.unwrap_or_default();
        panic!("no {css} ({error}) at {url}:\n{page}")
    }
}
