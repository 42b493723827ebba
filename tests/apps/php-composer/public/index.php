<?php

require __DIR__ . '/../vendor/autoload.php';

header('Content-Type: text/plain');
if (($_SERVER['REQUEST_URI'] ?? '/') === '/env') {
    echo getenv('GREETING') ?: 'no GREETING', "\n";
    exit;
}
echo App\Page::render(), "\n";
