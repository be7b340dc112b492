#!/usr/bin/env python
"""Django's command-line utility for DR Portal."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dr_portal.settings")
    from django.core.management import execute_from_command_line

    # Changes made by a command are audited as the operating-system user who ran it.
    from dr_portal.audit import command_context

    with command_context(sys.argv[1] if len(sys.argv) > 1 else "manage.py"):
        execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
