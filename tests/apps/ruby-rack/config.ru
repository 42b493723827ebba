require "skiff_greeting"

run lambda { |env|
  body = "#{SkiffGreeting.hello("a rack app")} (ruby #{RUBY_VERSION}, #{env["SERVER_SOFTWARE"]})\n"
  [200, {"content-type" => "text/plain"}, [body]]
}
