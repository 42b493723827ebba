<?php
header('Content-Type: text/plain');
echo 'hello from a plain index.php (php ', PHP_VERSION, ', ', PHP_SAPI, ")\n";
