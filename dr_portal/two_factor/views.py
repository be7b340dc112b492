"""The two-factor pages under /accounts/2fa/: status, enrol, verify, recovery codes, disable."""

from base64 import b32encode

import qrcode
import qrcode.image.svg
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from dr_portal.two_factor import services
from dr_portal.two_factor.forms import CodeForm
from dr_portal.two_factor.models import RecoveryCodeDevice


@never_cache
@login_required
def status(request):
    codes = RecoveryCodeDevice.objects.filter(user=request.user).first()
    return render(
        request,
        "two_factor/status.html",
        {
            "enrolled": services.is_enrolled(request.user),
            "required": services.required(request.user),
            "verified_by": services.verified_by(request),
            "codes_left": codes.remaining() if codes else 0,
            "regen_form": CodeForm(auto_id="regen_%s"),
            "off_form": CodeForm(auto_id="off_%s"),
        },
    )


@never_cache
@login_required
def enrol(request):
    if services.is_enrolled(request.user):
        return redirect("two_factor:status")
    form = CodeForm(request.POST or None)
    context = {"form": form, "next": _next(request)}
    if request.method == "POST" and form.is_valid():
        try:
            codes = services.confirm_enrolment(request, form.cleaned_data["code"])
        except services.CodeRefused as exc:
            form.add_error("code", str(exc))
        else:
            return _show_codes(request, codes, enrolled=True)
        # The key is not shown again: "start again" makes a new one.
        return render(request, "two_factor/enrol.html", context)
    device = services.start_enrolment(request.user)
    secret = b32encode(device.bin_key).decode()
    context.update(
        secret=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        qr_svg=_qr_svg(device.config_url),
    )
    return render(request, "two_factor/enrol.html", context)


@never_cache
@login_required
def verify(request):
    if services.verified_by(request) or not services.session_enrolled(request, refresh=True):
        return redirect(_next(request))  # the factor was reset or turned off meanwhile
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            how = services.verify(request, form.cleaned_data["code"])
        except services.CodeRefused as exc:
            form.add_error("code", str(exc))
        else:
            if how == services.RECOVERY_CODE:
                messages.warning(
                    request,
                    "You signed in with a recovery code; it cannot be used again. "
                    "Make new codes in Two-factor sign-in if few are left.",
                )
            return redirect(_next(request))
    return render(request, "two_factor/verify.html", {"form": form, "next": _next(request)})


@never_cache
@require_POST
@login_required
def regenerate_codes(request):
    form = CodeForm(request.POST)
    if form.is_valid():
        try:
            codes = services.regenerate_codes(request, form.cleaned_data["code"])
        except services.CodeRefused as exc:
            messages.error(request, str(exc))
        else:
            return _show_codes(request, codes, enrolled=False)
    else:
        messages.error(request, "Type a current code to make new recovery codes.")
    return redirect("two_factor:status")


@never_cache
@require_POST
@login_required
def disable(request):
    form = CodeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Type a current code to turn two-factor sign-in off.")
        return redirect("two_factor:status")
    try:
        services.disable_own(request, form.cleaned_data["code"])
    except services.CodeRefused as exc:
        messages.error(request, str(exc))
        return redirect("two_factor:status")
    messages.success(request, "Two-factor sign-in is off for your account.")
    if services.required(request.user):
        return redirect("two_factor:enrol")
    return redirect("two_factor:status")


def _show_codes(request, codes, *, enrolled):
    """The only page that ever shows these codes (they are stored as digests)."""
    return render(
        request,
        "two_factor/codes.html",
        {"codes": codes, "enrolled": enrolled, "next": _next(request)},
    )


def _next(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return "/"


def _qr_svg(text: str) -> str:
    """An inline SVG (no script, no external image: fits the CSP) of the otpauth:// URL."""
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=16, border=4)
    return mark_safe(image.to_string(encoding="unicode"))  # noqa: S308 (made here, no input)
