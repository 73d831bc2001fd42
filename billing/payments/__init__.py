"""Top-ups: plans bought through payment providers (Stripe, Alipay, WeChat Pay), credited exactly once.

`base` is the interface every provider implements, `registry` finds them, `stripe_pay`, `alipay_pay`
and `wechat_pay` are the providers (each through its own official or well-kept library), `orders`
is the domain (pricing, the pending → paid transition, refunds and chargebacks), and `views` the
pricing page, the checkout, the order pages and the providers' notification endpoints.
"""
