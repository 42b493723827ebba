#!/usr/bin/env python3
"""heroku-php-nginx [-C NGINX_INCLUDE] [-F FPM_INCLUDE] [-i PHP_INI] [DOCUMENT_ROOT]

Skiff's PHP web process (stdlib only, runs in the app's container as its user):
php-fpm on a unix socket and nginx on $PORT in front of it, both in the
foreground. When either exits the other is stopped and the process exits with
its status; SIGTERM and SIGINT stop both. Like Heroku's script of the same
name: DOCUMENT_ROOT is relative to /app (default: /app itself), ``-C`` adds an
nginx include inside the server block, ``-F`` one inside the php-fpm pool and
``-i`` a php.ini of the app's. ``heroku-php-apache2`` is the same script
(nginx serves; .htaccess files are not read).
"""

import argparse
import glob
import os
import re
import signal
import sys
import tempfile
import time

APP = "/app"


#: what a path may hold once resolved: it goes into nginx's and php-fpm's configuration files
SAFE_PATH = re.compile(r"/app(/[A-Za-z0-9._@+-]+)*")


def inside(path, what):
    """``path`` (relative to /app) resolved, refused if it leaves /app, is missing, or holds
    characters other than letters, digits and ``._@+-`` (it is written into config files)."""
    full = os.path.realpath(os.path.join(APP, path))
    if full != APP and not full.startswith(APP + "/"):
        sys.exit(f"{what} {path!r} is outside /app")
    if not SAFE_PATH.fullmatch(full):
        sys.exit(f"{what} {path!r}: use letters, digits and ._@+- in its path")
    if not os.path.exists(full):
        sys.exit(f"{what} {path!r} does not exist")
    return full


def nginx_conf(run, port, root, include):
    app_root = root == APP
    hidden = "location ~ /\\. { deny all; }\n"
    vendor = "        location ^~ /vendor/ { deny all; }\n" if app_root else ""
    extra = f"        include {include};\n" if include else ""
    return f"""daemon off;
worker_processes auto;
pid {run}/nginx.pid;
error_log stderr;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /dev/stdout;
    sendfile on;
    server_tokens off;
    client_body_temp_path {run}/client_body;
    fastcgi_temp_path {run}/fastcgi;
    proxy_temp_path {run}/proxy;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    client_max_body_size 50m;
    server {{
        listen {port};
        root {root};
        index index.php index.html index.htm;
        {hidden}{vendor}
        location / {{
            try_files $uri $uri/ /index.php$is_args$args;
        }}
        location ~ \\.php(/|$) {{
            fastcgi_split_path_info ^(.+?\\.php)(/.*)$;
            try_files $fastcgi_script_name =404;
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            fastcgi_param PATH_INFO $fastcgi_path_info;
            fastcgi_param HTTPS $skiff_https if_not_empty;
            fastcgi_pass unix:{run}/php-fpm.sock;
        }}
{extra}    }}
    map $http_x_forwarded_proto $skiff_https {{ default ""; https on; }}
}}
"""


def fpm_conf(run, include):
    children = os.environ.get("WEB_CONCURRENCY", "")
    children = children if children.isdigit() and 0 < int(children) <= 256 else "5"
    extra = f"include = {include}\n" if include else ""
    return f"""[global]
error_log = /proc/self/fd/2
log_limit = 8192
daemonize = no
pid = {run}/php-fpm.pid

[web]
listen = {run}/php-fpm.sock
pm = dynamic
pm.max_children = {children}
pm.start_servers = 1
pm.min_spare_servers = 1
pm.max_spare_servers = {min(int(children), 3)}
clear_env = no
catch_workers_output = yes
decorate_workers_output = no
{extra}"""


def fpm_binary():
    found = sorted(glob.glob("/usr/sbin/php-fpm*"))
    if not found:
        sys.exit("php-fpm is not installed in this image (the php toolchain layer has it)")
    return found[-1]


def main(argv):
    parser = argparse.ArgumentParser(prog=os.path.basename(argv[0]))
    parser.add_argument("-C", dest="nginx_include")
    parser.add_argument("-F", dest="fpm_include")
    parser.add_argument("-i", dest="php_ini")
    parser.add_argument("root", nargs="?", default="")
    args = parser.parse_args(argv[1:])
    port = os.environ.get("PORT", "")  # the image sets it (skiff.contracts.DEFAULT_PORT)
    if not port.isdigit() or not 0 < int(port) < 65536:
        sys.exit(f"PORT must be a TCP port, got {port!r}")
    root = inside(args.root, "document root") if args.root else APP
    if not os.path.isdir(root):
        sys.exit(f"document root {args.root!r} is not a directory")
    nginx_include = inside(args.nginx_include, "nginx include") if args.nginx_include else ""
    fpm_include = inside(args.fpm_include, "php-fpm include") if args.fpm_include else ""
    run = tempfile.mkdtemp(prefix="skiff-php-")
    env = dict(os.environ)
    if args.php_ini:
        ini_dir = os.path.join(run, "php.d")
        os.mkdir(ini_dir)
        os.symlink(inside(args.php_ini, "php.ini"), os.path.join(ini_dir, "zz-app.ini"))
        env["PHP_INI_SCAN_DIR"] = ":" + ini_dir  # after the distribution's own conf.d
    with open(os.path.join(run, "nginx.conf"), "w") as f:
        f.write(nginx_conf(run, port, root, nginx_include))
    with open(os.path.join(run, "php-fpm.conf"), "w") as f:
        f.write(fpm_conf(run, fpm_include))
    print(f"{parser.prog}: php-fpm and nginx on port {port}, document root {root}", flush=True)
    fpm = os.spawnve(
        os.P_NOWAIT, fpm_binary(), [fpm_binary(), "--nodaemonize", "--fpm-config", f"{run}/php-fpm.conf"], env
    )
    deadline = time.monotonic() + 10
    while not os.path.exists(f"{run}/php-fpm.sock") and time.monotonic() < deadline:
        if os.waitpid(fpm, os.WNOHANG)[0]:
            sys.exit("php-fpm exited at start")
        time.sleep(0.05)
    nginx = os.spawnvpe(os.P_NOWAIT, "nginx", ["nginx", "-e", "stderr", "-p", run, "-c", f"{run}/nginx.conf"], env)
    children = {fpm: "php-fpm", nginx: "nginx"}
    stopping = []

    def stop(signum, frame):
        if frame is not None:
            stopping.append(signum)
        for pid in children:
            try:
                os.kill(pid, signal.SIGQUIT if signum == signal.SIGQUIT else signal.SIGTERM)
            except ProcessLookupError:
                pass

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(signum, stop)
    while True:
        try:
            pid, status = os.wait()
        except InterruptedError:
            continue
        if pid in children:
            break
    name = children.pop(pid)
    code = os.waitstatus_to_exitcode(status)
    print(f"{parser.prog}: {name} exited ({code}); stopping", flush=True)
    stop(signal.SIGTERM, None)
    for other in children:
        os.waitpid(other, 0)
    return 0 if stopping else (code if code > 0 else 1)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
