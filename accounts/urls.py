from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy
from django.utils.translation import gettext_lazy as _

from . import views

app_name = "accounts"

urlpatterns = [
    path("signup/", views.signup, name="signup"),
    path("login/", views.ThrottledLoginView.as_view(), name="login"),
    path("login/verify/", views.verify_sign_in, name="login_verify"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "password/change/",
        auth_views.PasswordChangeView.as_view(
            template_name="accounts/form_page.html",
            success_url=reverse_lazy("accounts:password_change_done"),
            extra_context={"title": _("Change password"), "submit": _("Change password")},
        ),
        name="password_change",
    ),
    path(
        "password/change/done/",
        auth_views.PasswordChangeDoneView.as_view(
            template_name="accounts/message_page.html",
            extra_context={"title": _("Password changed"), "message": _("Your password has been changed.")},
        ),
        name="password_change_done",
    ),
    path(
        "password/reset/",
        views.ThrottledPasswordResetView.as_view(
            template_name="accounts/form_page.html",
            email_template_name="accounts/password_reset_email.txt",
            success_url=reverse_lazy("accounts:password_reset_done"),
            extra_context={"title": _("Reset password"), "submit": _("Send reset link")},
        ),
        name="password_reset",
    ),
    path(
        "password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(
            template_name="accounts/message_page.html",
            extra_context={
                "title": _("Check your email"),
                "message": _("If an account uses that address, a link to reset its password is on its way."),
            },
        ),
        name="password_reset_done",
    ),
    path(
        "password/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            template_name="accounts/form_page.html",
            success_url=reverse_lazy("accounts:password_reset_complete"),
            extra_context={"title": _("Choose a new password"), "submit": _("Set password")},
        ),
        name="password_reset_confirm",
    ),
    path(
        "password/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(
            template_name="accounts/message_page.html",
            extra_context={"title": _("Password set"), "message": _("Your new password is set. You can log in now.")},
        ),
        name="password_reset_complete",
    ),
    path("settings/", views.account_settings, name="settings"),
    path("settings/email/send/", views.send_verification, name="send_verification"),
    path("settings/2fa/start/", views.two_factor_start, name="two_factor_start"),
    path("settings/2fa/confirm/", views.two_factor_confirm, name="two_factor_confirm"),
    path("settings/2fa/recovery/", views.two_factor_recovery, name="two_factor_recovery"),
    path("settings/2fa/disable/", views.two_factor_disable, name="two_factor_disable"),
    path("email/verify/<str:token>/", views.verify_email, name="verify_email"),
    path("activity/", views.activity, name="activity"),
    path("keys/", views.key_list, name="keys"),
    path("keys/<str:public_id>/revoke/", views.key_revoke, name="key_revoke"),
]
