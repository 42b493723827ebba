<?php

namespace Acme\Greeter;

final class Greeter
{
    public function hello(string $who): string
    {
        return "hello from the vendored acme/greeter to {$who}";
    }
}
