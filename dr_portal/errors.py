from django.shortcuts import render


def forbidden(request, exception=None):
    reason = (
        str(exception) if exception and str(exception) else "You do not have the role this needs."
    )
    return render(request, "403.html", {"reason": reason}, status=403)
