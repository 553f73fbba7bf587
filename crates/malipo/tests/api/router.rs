//! The router across order books and pools over HTTP: a route through a
//! pool and a book (2 hops) executes exactly as quoted, its book leg a
//! logged, settled market IOC order of the customer; a route whose minimum
//! the book can no longer give after it changed moves nothing at all (no
//! order, no fill, no command logged, the pool unchanged); `malipo trading
//! check` passes after both; a book sell leg stops before the customer's
//! own resting order and leaves the rest of its input unspent.

use crate::both_backends;
use crate::helpers::{TestApp, spawn_node, test_config};
use crate::trading::{assert_consistent, balance, btc_usd, credit, customer, limit, order};
use serde_json::{Value, json};

const KES_USD: &str = "pool_kes_usd_30";
const LOT: u128 = 1_000;
const TAKER_FEE_BPS: u128 = 20;

/// Uniswap v2's exact-input formula (fee 30 bps), computed independently.
fn pool_out(amount_in: u128, reserve_in: u128, reserve_out: u128) -> u128 {
    let in_with_fee = amount_in * (10_000 - 30);
    in_with_fee * reserve_out / (reserve_in * 10_000 + in_with_fee)
}

/// What a taker buy with `budget` quote gets against `asks` (price per lot,
/// quantity), one fill per maker order, the taker fee rounded up per fill:
/// (spent, base bought). Lot by lot, independently of `malipo-amm`.
fn book_buy(budget: u128, asks: &[(u128, u128)]) -> (u128, u128) {
    let cost = |price: u128, lots: u128| {
        let notional = price * lots;
        notional + (notional * TAKER_FEE_BPS).div_ceil(10_000)
    };
    let (mut spent, mut bought) = (0, 0);
    for &(price, quantity) in asks {
        let mut lots = 0;
        while lots < quantity / LOT && spent + cost(price, lots + 1) <= budget {
            lots += 1;
        }
        spent += cost(price, lots);
        bought += lots * LOT;
        if lots < quantity / LOT {
            break;
        }
    }
    (spent, bought)
}

fn number(value: &Value) -> u128 {
    u128::from(value.as_u64().expect("a number"))
}

async fn reserves(app: &TestApp, key: &str) -> (u128, u128) {
    let pool = app
        .get(&format!("/v1/trading/pools/{KES_USD}"), key)
        .await
        .expect(200);
    (number(&pool["reserves"][0]), number(&pool["reserves"][1]))
}

async fn book(app: &TestApp, key: &str) -> Value {
    app.get("/v1/trading/books/btc_usd", key).await.expect(200)
}

/// A KES/USD pool and a BTC/USD book with two asks: KES reaches BTC only
/// through both. Answers the test key, the trader and the ask maker.
async fn market(app: &TestApp) -> (String, String, String) {
    let key = app.test_key().await;
    btc_usd(app).await;
    app.post(
        "/v1/admin/trading/pools",
        &app.operator_token,
        &json!({"asset_a": "kes", "asset_b": "usd", "fee_bps": 30}),
    )
    .await
    .expect(200);
    let founder = customer(app, &key, "Founder").await;
    credit(app, &key, &founder, "kes", 100_000_000).await;
    credit(app, &key, &founder, "usd", 100_000_000).await;
    app.post(
        &format!("/v1/trading/pools/{KES_USD}/add_liquidity"),
        &key,
        &json!({"customer": founder, "amount_a": 13_000_000, "amount_b": 100_000}),
    )
    .await
    .expect(200);
    let maker = customer(app, &key, "Maker").await;
    credit(app, &key, &maker, "btc", 1_000_000).await;
    order(app, &key, limit(&maker, "sell", 50, 10_000))
        .await
        .expect(200);
    order(app, &key, limit(&maker, "sell", 52, 20_000))
        .await
        .expect(200);
    let trader = customer(app, &key, "Trader").await;
    credit(app, &key, &trader, "kes", 1_000_000).await;
    (key, trader, maker)
}

async fn routes_through_a_pool_and_a_book_execute_as_quoted(app: &TestApp) {
    let (key, trader, maker) = market(app).await;
    let usd = pool_out(130_000, 13_000_000, 100_000);
    let (spent, btc) = book_buy(usd, &[(50, 10_000), (52, 20_000)]);
    assert!(
        btc > 10_000 && spent < usd,
        "the book leg takes both asks and leaves change"
    );

    let request = json!({"asset_in": "kes", "asset_out": "btc", "amount_in": 130_000});
    let quote = app
        .post("/v1/trading/route", &key, &request)
        .await
        .expect(200);
    assert_eq!(number(&quote["amount_out"]), btc);
    let legs = quote["paths"][0]["legs"].as_array().expect("legs");
    assert_eq!(legs.len(), 2);
    assert_eq!(
        (&legs[0]["venue"], &legs[0]["venue_id"], &legs[0]["pool"]),
        (&json!("pool"), &json!(KES_USD), &json!(KES_USD))
    );
    assert_eq!(number(&legs[0]["amount_out"]), usd);
    assert_eq!(
        (&legs[1]["venue"], &legs[1]["venue_id"], &legs[1]["pool"]),
        (&json!("book"), &json!("btc_usd"), &Value::Null)
    );
    assert_eq!(number(&legs[1]["amount_in"]), usd);
    assert_eq!(number(&legs[1]["amount_unspent"]), usd - spent);
    assert_eq!(number(&legs[1]["amount_out"]), btc);
    let book_before = book(app, &key).await;

    let mut execute = request.clone();
    execute["customer"] = json!(trader);
    execute["min_amount_out"] = json!(btc as u64);
    let done = app
        .post("/v1/trading/route/execute", &key, &execute)
        .await
        .expect(200);
    assert_eq!(number(&done["amount_out"]), btc);
    let executed = done["paths"][0]["legs"].as_array().expect("legs");
    for (leg, quoted) in executed.iter().zip(legs) {
        for field in [
            "venue",
            "venue_id",
            "amount_in",
            "amount_unspent",
            "amount_out",
        ] {
            assert_eq!(leg[field], quoted[field], "{field} as quoted");
        }
    }
    let order_id = executed[1]["order"].as_str().expect("the book leg's order");

    // The customer: KES out, the change of the book leg kept, BTC in.
    assert_eq!(
        balance(app, &key, &trader, "kes").await,
        (1_000_000 - 130_000, 0)
    );
    assert_eq!(
        balance(app, &key, &trader, "usd").await,
        ((usd - spent) as u64, 0)
    );
    assert_eq!(balance(app, &key, &trader, "btc").await, (btc as u64, 0));
    // The pool moved by its leg, the book by its order.
    assert_eq!(reserves(app, &key).await, (13_130_000, 100_000 - usd));
    let book_after = book(app, &key).await;
    assert_eq!(
        book_after["sequence"].as_u64(),
        book_before["sequence"]
            .as_u64()
            .map(|sequence| sequence + 1),
        "the order is one command in the book's log"
    );
    assert_eq!(
        book_after["asks"],
        json!([{"price": 52, "quantity": 30_000 - btc as u64, "orders": 1}])
    );
    let placed = app
        .get(&format!("/v1/trading/orders/{order_id}"), &key)
        .await
        .expect(200);
    assert_eq!(placed["customer"], trader.as_str());
    assert_eq!(
        (&placed["type"], &placed["time_in_force"]),
        (&json!("market"), &json!("IOC"))
    );
    assert_eq!(
        (&placed["side"], &placed["status"]),
        (&json!("buy"), &json!("filled"))
    );
    assert_eq!(number(&placed["filled_quantity"]), btc);
    assert_eq!(
        number(&placed["quote_filled"]) + number(&placed["fees_paid"]),
        spent
    );
    let fills = app
        .get(&format!("/v1/trading/fills?order={order_id}"), &key)
        .await
        .expect(200);
    assert_eq!(
        fills["data"].as_array().expect("fills").len(),
        2,
        "one per ask"
    );
    // The maker was paid for both asks, less its fees.
    let (maker_usd, _) = balance(app, &key, &maker, "usd").await;
    assert!(maker_usd > 0 && u128::from(maker_usd) < spent);
    assert_consistent(app).await;

    let spec = app.get("/openapi.json", "").await.expect(200);
    let leg = &spec["components"]["schemas"]["SwapLeg"]["properties"];
    for field in ["venue", "venue_id", "order", "amount_unspent"] {
        assert!(
            leg[field].is_object(),
            "SwapLeg.{field} is documented: {leg}"
        );
    }
}
both_backends!(routes_through_a_pool_and_a_book_execute_as_quoted);

async fn a_route_the_changed_book_cannot_fill_moves_nothing(app: &TestApp) {
    let (key, trader, maker) = market(app).await;
    let request = json!({"asset_in": "kes", "asset_out": "btc", "amount_in": 130_000});
    let quote = app
        .post("/v1/trading/route", &key, &request)
        .await
        .expect(200);
    let quoted = number(&quote["amount_out"]);

    // Between quote and execute, the maker cancels its better ask.
    let orders = app
        .get(&format!("/v1/trading/orders?customer={maker}"), &key)
        .await
        .expect(200);
    let cheaper = orders["data"]
        .as_array()
        .expect("orders")
        .iter()
        .find(|order| order["price"] == 50)
        .and_then(|order| order["id"].as_str())
        .expect("the ask at 50")
        .to_owned();
    app.post(
        &format!("/v1/trading/orders/{cheaper}/cancel"),
        &key,
        &json!({}),
    )
    .await
    .expect(200);
    let book_before = book(app, &key).await;
    let reserves_before = reserves(app, &key).await;

    let mut execute = request.clone();
    execute["customer"] = json!(trader);
    execute["min_amount_out"] = json!(quoted as u64);
    let refused = app.post("/v1/trading/route/execute", &key, &execute).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "slippage");
    assert_eq!(refused.error_param(), Some("min_amount_out"));

    // Nothing moved: balances, the pool, the book and its log, no order.
    assert_eq!(balance(app, &key, &trader, "kes").await, (1_000_000, 0));
    assert_eq!(balance(app, &key, &trader, "usd").await, (0, 0));
    assert_eq!(balance(app, &key, &trader, "btc").await, (0, 0));
    assert_eq!(reserves(app, &key).await, reserves_before);
    assert_eq!(book(app, &key).await, book_before, "no command logged");
    let trader_orders = app
        .get(&format!("/v1/trading/orders?customer={trader}"), &key)
        .await
        .expect(200);
    assert_eq!(trader_orders["data"], json!([]));
    let fills = app
        .get(&format!("/v1/trading/fills?customer={trader}"), &key)
        .await
        .expect(200);
    assert_eq!(fills["data"], json!([]));
    assert_consistent(app).await;

    // The same route with a minimum the book can still give executes, and
    // the engine this node kept is the one the log rebuilds.
    let requote = app
        .post("/v1/trading/route", &key, &request)
        .await
        .expect(200);
    assert!(number(&requote["amount_out"]) < quoted);
    execute["min_amount_out"] = requote["amount_out"].clone();
    let done = app
        .post("/v1/trading/route/execute", &key, &execute)
        .await
        .expect(200);
    assert_eq!(done["amount_out"], requote["amount_out"]);
    assert_consistent(app).await;
}
both_backends!(a_route_the_changed_book_cannot_fill_moves_nothing);

async fn a_book_sell_leg_stops_at_the_customers_own_order(app: &TestApp) {
    let (key, trader, _) = market(app).await;
    let buyer = customer(app, &key, "Buyer").await;
    credit(app, &key, &buyer, "usd", 10_000).await;
    credit(app, &key, &trader, "btc", 10_000).await;
    credit(app, &key, &trader, "usd", 100).await;
    order(app, &key, limit(&buyer, "buy", 48, 2_000))
        .await
        .expect(200);
    // The trader's own bid, between two of the buyer's.
    let own = order(app, &key, limit(&trader, "buy", 47, 1_000))
        .await
        .expect(200);
    order(app, &key, limit(&buyer, "buy", 46, 5_000))
        .await
        .expect(200);
    let (_, own_hold) = balance(app, &key, &trader, "usd").await;
    assert!(own_hold > 0);

    // Anyone's quote walks all three bids; the trader's execution stops
    // before its own (self-trade prevention would stop its order there):
    // 2 lots at 48, the fee rounded up, 3,500 satoshis left unspent.
    let request = json!({"asset_in": "btc", "asset_out": "kes", "amount_in": 5_500});
    let quote = app
        .post("/v1/trading/route", &key, &request)
        .await
        .expect(200);
    let usd = 2 * 48 - (2 * 48 * TAKER_FEE_BPS).div_ceil(10_000);
    let kes = pool_out(usd, 100_000, 13_000_000);
    assert!(number(&quote["amount_out"]) > kes);
    let mut execute = request.clone();
    execute["customer"] = json!(trader);
    execute["min_amount_out"] = json!(kes as u64);
    let done = app
        .post("/v1/trading/route/execute", &key, &execute)
        .await
        .expect(200);
    assert_eq!(number(&done["amount_out"]), kes);
    let legs = &done["paths"][0]["legs"];
    assert_eq!(
        (&legs[0]["venue"], &legs[1]["venue"]),
        (&json!("book"), &json!("pool"))
    );
    assert_eq!(number(&legs[0]["amount_unspent"]), 3_500);
    assert_eq!(number(&legs[0]["amount_out"]), usd);

    assert_eq!(balance(app, &key, &trader, "btc").await, (8_000, 0));
    assert_eq!(
        balance(app, &key, &trader, "kes").await,
        (1_000_000 + kes as u64, 0)
    );
    assert_eq!(
        balance(app, &key, &trader, "usd").await,
        (100 - own_hold, own_hold),
        "the USD leg passed through; the own bid still holds its part"
    );
    assert_eq!(reserves(app, &key).await, (13_000_000 - kes, 100_000 + usd));
    let own_after = app
        .get(
            &format!("/v1/trading/orders/{}", own["id"].as_str().expect("id")),
            &key,
        )
        .await
        .expect(200);
    assert_eq!(own_after["status"], "open");
    assert_eq!(
        book(app, &key).await["bids"],
        json!([{"price": 47, "quantity": 1_000, "orders": 1},
               {"price": 46, "quantity": 5_000, "orders": 1}])
    );
    assert_consistent(app).await;
}
both_backends!(a_book_sell_leg_stops_at_the_customers_own_order);

/// Routes, swaps and orders at once on the same book and pool: none
/// deadlocks or fails, and afterwards the check passes and no BTC was made
/// or lost.
async fn routes_swaps_and_orders_at_once_stay_consistent(app: &TestApp) {
    let (key, trader, maker) = market(app).await;
    let seller = customer(app, &key, "Seller").await;
    credit(app, &key, &seller, "btc", 1_000_000).await;
    order(app, &key, limit(&seller, "sell", 55, 100_000))
        .await
        .expect(200);
    let buyer = customer(app, &key, "Buyer").await;
    credit(app, &key, &buyer, "usd", 1_000_000).await;
    let mut traders = vec![trader];
    for index in 1..4 {
        let id = customer(app, &key, &format!("Trader {index}")).await;
        credit(app, &key, &id, "kes", 1_000_000).await;
        traders.push(id);
    }
    let requests = (0..20).map(|index: usize| {
        let (client, key, base) = (app.client.clone(), key.clone(), app.base.clone());
        let trader = &traders[index % 4];
        let (path, body) = match index % 4 {
            0 | 1 => (
                "/v1/trading/route/execute",
                json!({"customer": trader, "asset_in": "kes", "asset_out": "btc",
                       "amount_in": 20_000, "min_amount_out": 1}),
            ),
            2 => (
                "/v1/trading/swaps",
                json!({"customer": trader, "pool": KES_USD, "asset_in": "kes",
                       "amount_in": 10_000, "min_amount_out": 1}),
            ),
            _ if index % 8 == 3 => ("/v1/trading/orders", limit(&seller, "sell", 56, 2_000)),
            _ => (
                "/v1/trading/orders",
                json!({"customer": buyer, "pair": "btc_usd", "side": "buy", "type": "market",
                       "quantity": 1_000}),
            ),
        };
        async move {
            let response = client
                .post(format!("{base}{path}"))
                .bearer_auth(&key)
                .json(&body)
                .send()
                .await
                .expect("a response");
            (path, response.status().as_u16())
        }
    });
    let statuses = futures::future::join_all(requests).await;
    assert!(
        statuses.iter().all(|(_, status)| *status == 200),
        "{statuses:?}"
    );
    let mut btc = 0;
    for customer in traders.iter().chain([&maker, &seller, &buyer]) {
        let (available, held) = balance(app, &key, customer, "btc").await;
        btc += available + held;
    }
    assert_eq!(btc, 2_000_000, "what was credited, no more, no less");
    assert_consistent(app).await;
}
both_backends!(routes_swaps_and_orders_at_once_stay_consistent);

/// A second node on the same database quotes and executes from its own
/// engines caught up with the log: it sees the first node's cancel, and
/// the first node then sees its route's order.
async fn another_node_routes_on_the_books_as_logged(app: &TestApp) {
    let (key, trader, maker) = market(app).await;
    let second = spawn_node(app.database_url(), test_config()).await;
    let second_base = format!("http://{}", second.address);
    let post = |path: &str, body: Value| {
        let (client, key, url) = (
            app.client.clone(),
            key.clone(),
            format!("{second_base}{path}"),
        );
        async move {
            let response = client
                .post(url)
                .bearer_auth(&key)
                .json(&body)
                .send()
                .await
                .expect("a response");
            (
                response.status().as_u16(),
                response.json::<Value>().await.expect("json"),
            )
        }
    };
    let request = json!({"asset_in": "kes", "asset_out": "btc", "amount_in": 130_000});
    let (status, first_quote) = post("/v1/trading/route", request.clone()).await;
    assert_eq!(status, 200, "{first_quote}");

    // The first node cancels the better ask; the second node's engine has
    // not seen it until it catches up with the log.
    let orders = app
        .get(&format!("/v1/trading/orders?customer={maker}"), &key)
        .await
        .expect(200);
    let cheaper = orders["data"]
        .as_array()
        .expect("orders")
        .iter()
        .find(|order| order["price"] == 50)
        .and_then(|order| order["id"].as_str())
        .expect("the ask at 50")
        .to_owned();
    app.post(
        &format!("/v1/trading/orders/{cheaper}/cancel"),
        &key,
        &json!({}),
    )
    .await
    .expect(200);
    let mut execute = request.clone();
    execute["customer"] = json!(trader);
    execute["min_amount_out"] = first_quote["amount_out"].clone();
    let (status, refused) = post("/v1/trading/route/execute", execute.clone()).await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (400, &json!("slippage")),
        "{refused}"
    );

    let (_, quote) = post("/v1/trading/route", request.clone()).await;
    assert!(number(&quote["amount_out"]) < number(&first_quote["amount_out"]));
    assert_eq!(
        quote,
        app.post("/v1/trading/route", &key, &request)
            .await
            .expect(200)
    );
    execute["min_amount_out"] = quote["amount_out"].clone();
    let (status, done) = post("/v1/trading/route/execute", execute).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["amount_out"], quote["amount_out"]);
    // The first node's book includes the second node's order.
    let book_first = book(app, &key).await;
    let book_second = app
        .client
        .get(format!("{second_base}/v1/trading/books/btc_usd"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("book")
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(book_first, book_second);
    assert_eq!(
        book_first["asks"][0]["quantity"].as_u64(),
        Some(20_000 - number(&done["amount_out"]) as u64)
    );
    assert_consistent(app).await;
    second.stop().await;
}
both_backends!(another_node_routes_on_the_books_as_logged);
