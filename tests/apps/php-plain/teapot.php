<?php http_response_code(418); echo 'teapot';
