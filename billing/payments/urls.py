from __future__ import annotations

from django.urls import path

from . import views

app_name = "payments"

urlpatterns = [
    path("pricing/", views.pricing, name="pricing"),
    path("payments/checkout/", views.checkout, name="checkout"),
    path("payments/orders/", views.order_list, name="orders"),
    path("payments/orders/<str:code>/", views.order, name="order"),
    path("payments/stripe/webhook/", views.stripe_webhook, name="stripe_notify"),
    path("payments/alipay/notify/", views.alipay_notify, name="alipay_notify"),
    path("payments/wechat/notify/", views.wechat_notify, name="wechat_notify"),
]
