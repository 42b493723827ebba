module SkiffGreeting
  def self.hello(who)
    "hello from the vendored skiff-greeting gem to #{who}"
  end
end
