<?php

namespace App;

use Acme\Greeter\Greeter;

final class Page
{
    public static function render(): string
    {
        $greeting = (new Greeter())->hello('a composer app');
        return $greeting . ' (php ' . PHP_VERSION . ', ' . PHP_SAPI . ', ' . ($_SERVER['SERVER_SOFTWARE'] ?? '?') . ')';
    }
}
