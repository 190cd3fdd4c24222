//! Concurrency limits: the limit holds under load, queues admit FIFO after releases, time out,
//! refuse when full, and cancelled waiters leak nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use turnpike_state::{Concurrency, Queue};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_holds_under_fifty_tasks() {
    let conc = Concurrency::new();
    let now = Arc::new(AtomicU32::new(0));
    let peak = Arc::new(AtomicU32::new(0));
    let queue = Queue {
        max_waiting: 100,
        timeout: Duration::from_secs(10),
    };
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (conc, now, peak) = (conc.clone(), Arc::clone(&now), Arc::clone(&peak));
            tokio::spawn(async move {
                let permit = conc.acquire(b"api", 5, Some(queue)).await.unwrap();
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(n, Ordering::SeqCst);
                assert!(conc.in_flight(b"api") <= 5);
                tokio::time::sleep(Duration::from_millis(5)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                drop(permit);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(peak.load(Ordering::SeqCst), 5);
    assert_eq!(conc.in_flight(b"api"), 0);
    assert_eq!(conc.tracked_keys(), 0);
}

#[tokio::test]
async fn refuses_at_once_without_queue_or_when_queue_full() {
    let conc = Concurrency::new();
    let _held = conc.acquire(b"k", 1, None).await.unwrap();
    let busy = conc.acquire(b"k", 1, None).await.unwrap_err();
    assert!(!busy.waited);
    let q = Queue {
        max_waiting: 1,
        timeout: Duration::from_secs(5),
    };
    let c2 = conc.clone();
    let waiting = tokio::spawn(async move { c2.acquire(b"k", 1, Some(q)).await.map(drop) });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let started = Instant::now();
    let busy = conc.acquire(b"k", 1, Some(q)).await.unwrap_err();
    assert!(!busy.waited);
    assert!(started.elapsed() < Duration::from_millis(100));
    waiting.abort();
}

#[tokio::test]
async fn queue_admits_after_release_in_order() {
    let conc = Concurrency::new();
    let held = conc.acquire(b"k", 1, None).await.unwrap();
    let q = Queue {
        max_waiting: 10,
        timeout: Duration::from_secs(5),
    };
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for i in 0..3 {
        let (c, order) = (conc.clone(), Arc::clone(&order));
        waiters.push(tokio::spawn(async move {
            let p = c.acquire(b"k", 1, Some(q)).await.unwrap();
            order.lock().unwrap().push(i);
            tokio::time::sleep(Duration::from_millis(5)).await;
            drop(p);
        }));
        // Let each waiter enqueue before the next, so FIFO order is defined.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(held);
    for w in waiters {
        w.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2]);
    assert_eq!(conc.tracked_keys(), 0);
}

#[tokio::test]
async fn queue_timeout_is_busy_waited() {
    let conc = Concurrency::new();
    let _held = conc.acquire(b"k", 1, None).await.unwrap();
    let q = Queue {
        max_waiting: 10,
        timeout: Duration::from_millis(50),
    };
    let started = Instant::now();
    let busy = conc.acquire(b"k", 1, Some(q)).await.unwrap_err();
    assert!(busy.waited);
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(conc.in_flight(b"k"), 1);
}

#[tokio::test]
async fn cancelled_waiters_do_not_leak_slots() {
    let conc = Concurrency::new();
    let held = conc.acquire(b"k", 1, None).await.unwrap();
    let q = Queue {
        max_waiting: 10,
        timeout: Duration::from_secs(5),
    };
    // Cancelled while still queued.
    let c = conc.clone();
    let w = tokio::spawn(async move { c.acquire(b"k", 1, Some(q)).await.map(drop) });
    tokio::time::sleep(Duration::from_millis(20)).await;
    w.abort();
    let _ = w.await;
    // Cancelled right as the slot is handed over: granted, never polled again.
    let c = conc.clone();
    let mut fut = Box::pin(async move { c.acquire(b"k", 1, Some(q)).await });
    assert!(futures_poll_once(fut.as_mut()).await.is_none());
    drop(held); // hands the slot to the pending future
    drop(fut); // which is dropped without taking it
    assert_eq!(conc.in_flight(b"k"), 0);
    assert_eq!(conc.tracked_keys(), 0);
    let _p = conc.acquire(b"k", 1, None).await.unwrap();
}

/// Polls a future once; `Some` if it completed.
async fn futures_poll_once<F: std::future::Future + Unpin>(mut fut: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| match std::pin::Pin::new(&mut fut).poll(cx) {
        std::task::Poll::Ready(v) => std::task::Poll::Ready(Some(v)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await
}

#[tokio::test]
async fn raising_the_limit_admits_waiters() {
    let conc = Concurrency::new();
    let _a = conc.acquire(b"k", 1, None).await.unwrap();
    let q = Queue {
        max_waiting: 10,
        timeout: Duration::from_secs(5),
    };
    let c = conc.clone();
    let w = tokio::spawn(async move { c.acquire(b"k", 1, Some(q)).await.map(drop) });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let _b = conc.acquire(b"k", 3, None).await.unwrap();
    assert!(w.await.unwrap().is_ok());
}
